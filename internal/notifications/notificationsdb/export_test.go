package notificationsdb

// ListIn is List through q (a transaction of the caller's), for the test that
// counts the rows it reads.
var ListIn = list
