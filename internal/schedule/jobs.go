package schedule

import (
	"slices"
	"strings"
)

// Annotation names of the cron-connector convention.
const (
	// ScheduleAnnotation holds the function's cron expression.
	ScheduleAnnotation = "schedule"
	// TopicAnnotation holds the function's comma-separated topics.
	TopicAnnotation = "topic"
	// CronTopic is the topic that marks a scheduled function.
	CronTopic = "cron-function"
)

// Job is a function to invoke on a schedule.
type Job struct {
	Function string
	Schedule Schedule
}

// FromAnnotations decides whether the function is scheduled: it has a
// non-empty "schedule" annotation and its "topic" annotation is absent or
// lists "cron-function" (a function that lists only event topics is the
// RabbitMQ connector's, not ours). openfaas/cron-connector is stricter: it
// wants topic to be exactly "cron-function", so it would not schedule the
// shop's scheduled functions, which carry no topic. ok is false
// for an unscheduled function; err reports an unparsable expression.
func FromAnnotations(function string, annotations map[string]string) (job Job, ok bool, err error) {
	spec := strings.TrimSpace(annotations[ScheduleAnnotation])
	if spec == "" {
		return Job{}, false, nil
	}
	if topic := strings.TrimSpace(annotations[TopicAnnotation]); topic != "" {
		topics := strings.Split(topic, ",")
		for i := range topics {
			topics[i] = strings.TrimSpace(topics[i])
		}
		if !slices.Contains(topics, CronTopic) {
			return Job{}, false, nil
		}
	}
	s, err := Parse(spec)
	if err != nil {
		return Job{}, false, err
	}
	return Job{Function: function, Schedule: s}, true, nil
}
