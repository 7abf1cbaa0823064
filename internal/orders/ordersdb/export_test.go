package ordersdb

// ClaimStaleIn is ClaimStale in the caller's transaction, for the tests that
// count the rows it reads.
var ClaimStaleIn = claimStale

// ListIn reads a page of List's orders, without their lines, through q (a
// transaction of the caller's), for the test that counts the rows it reads.
var ListIn = listPage
