package connector

import "time"

// stopWait is what runConnector's cleanup leaves of go test's -timeout when
// it waits for a connector that does not stop: enough for the test's
// failure message and a private node's kill (proctest.CloseAtEnd kills a
// node once its test has failed).
const stopWait = 20 * time.Second
