package connector

import "time"

// deadlineMargin is what a test keeps of go test's -timeout (t.Deadline)
// for its cleanups and its failure message — the connector's stop, a
// private node's Close — when its waits are bounded by the deadline
// (proctest.BeforeDeadline, proctest.DeadlineContext): `go test` outside
// make runs with the default -timeout of 10 min, less than some of these
// tests' waits allowed (the memory alarm tests' InvokeTimeout of 15 min, a
// node start's 3 min), and past -timeout the test binary panics without a
// message of the test's.
const deadlineMargin = 30 * time.Second
