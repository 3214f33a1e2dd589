package account

// flowLanes is the line of background jobs, one lane per flow (magic
// link, signup, reset, ...), served in turn: a flood of signups waits in
// its own lane while a sign-in link's job runs next. Each lane holds at
// most maxFlowLaneJobs; past it that flow's requests get 503 busy while
// the other flows go on.
type flowLanes struct {
	lanes map[string][]flowJob
	order []string // lanes in the order they are served
	next  int
}

// maxFlowLaneJobs bounds one flow's jobs in line.
const maxFlowLaneJobs = MaxFlowJobs / 4

// fits reports whether flow's lane has room.
func (l *flowLanes) fits(flow string) bool {
	return len(l.lanes[flow]) < maxFlowLaneJobs
}

// push appends a job to its flow's lane.
func (l *flowLanes) push(j flowJob) {
	if l.lanes == nil {
		l.lanes = map[string][]flowJob{}
	}
	if _, ok := l.lanes[j.name]; !ok {
		l.order = append(l.order, j.name)
	}
	l.lanes[j.name] = append(l.lanes[j.name], j)
}

// pop takes the oldest job of the next lane that has one.
func (l *flowLanes) pop() (flowJob, bool) {
	for range l.order {
		name := l.order[l.next%len(l.order)]
		l.next = (l.next + 1) % len(l.order)
		if q := l.lanes[name]; len(q) > 0 {
			j := q[0]
			q[0] = flowJob{}
			l.lanes[name] = q[1:]
			return j, true
		}
	}
	return flowJob{}, false
}
