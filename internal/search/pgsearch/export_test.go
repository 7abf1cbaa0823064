package pgsearch

// SearchBatch is Search's statements, for the test that sends them in its
// own transaction to count the rows they read.
var SearchBatch = searchBatch
