package fnhttp

import "time"

// SetClock makes l read the time from now (tests).
func SetClock(l *Lazy, now func() time.Time) { l.now = now }

// AnswerHeaders are ForgetAnswer's headers (tests).
var AnswerHeaders = answerHeaders
