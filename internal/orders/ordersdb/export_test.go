package ordersdb

// ClaimStaleIn is ClaimStale in the caller's transaction, for the tests that
// count the rows it reads.
var ClaimStaleIn = claimStale
