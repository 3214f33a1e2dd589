package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// phase is one step of a reconcile. Phases share what they learn through
// the reconcile's scope S, never through the object's conditions: a phase
// that finds the object cannot be served says so on the scope (see
// outcome.block), and that ends the reconcile.
type phase[S any] func(ctx context.Context, s *S) (ctrl.Result, error)

// stopper is the part of a scope runPhases reads: whether a phase ended the
// reconcile early. Every scope gets it by embedding outcome.
type stopper interface{ stopped() bool }

// runPhases runs phases in order. It stops at the first error, or after a
// phase that stopped the reconcile, and merges the results of the phases
// that ran. On error the result is dropped: controller-runtime ignores it
// then anyway and backs off.
func runPhases[S any, P interface {
	*S
	stopper
}](ctx context.Context, s P, phases ...phase[S]) (ctrl.Result, error) {
	var res ctrl.Result
	for _, p := range phases {
		r, err := p(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		res = mergeResults(res, r)
		if s.stopped() {
			break
		}
	}
	return res, nil
}

// mergeResults keeps the earliest wake-up: each phase asks to be woken
// when its own next deadline comes (a key rotation, an expiry), and the
// soonest of them is the one that must not be missed.
func mergeResults(a, b ctrl.Result) ctrl.Result {
	if b.RequeueAfter > 0 && (a.RequeueAfter == 0 || b.RequeueAfter < a.RequeueAfter) {
		a.RequeueAfter = b.RequeueAfter
	}
	return a
}

// outcome is what the phases of one reconcile found out about the object's
// readiness. The deferred status patch turns it into the Ready condition,
// once, so no phase sets Ready and no phase reads it back.
type outcome struct {
	// blocked is why the object is not served. The phase that sets it ends
	// the reconcile.
	blocked *condition
	// degraded is what is wrong with an object that is still served (an
	// API key whose plaintext Secret was deleted). Later phases still run,
	// and a block overrides it.
	degraded *condition
}

func (o *outcome) stopped() bool { return o.blocked != nil }

// block ends the reconcile: the object is not served, for reason.
func (o *outcome) block(reason, message string) {
	o.blocked = &condition{reason: reason, message: message}
}

// blockOnce is block, with an event announced only when Ready turns to
// reason, not on every reconcile that finds it still so.
func (o *outcome) blockOnce(reason, message string, e announcement) {
	o.blocked = &condition{reason: reason, message: message, once: &e}
}

// degrade reports a problem that leaves the object served.
func (o *outcome) degrade(reason, message string) {
	o.degraded = &condition{reason: reason, message: message}
}

// readiness is the Ready condition the reconcile earned: a block, else a
// degradation, else Ready=True with readyMessage when every phase ran. It
// is nil when an error cut the reconcile short before anything was
// learned: Ready then keeps what the last complete reconcile said.
func (o *outcome) readiness(complete bool, readyMessage string) *condition {
	switch {
	case o.blocked != nil:
		return o.blocked
	case o.degraded != nil:
		return o.degraded
	case complete:
		return &condition{ready: true, reason: tav1.ReasonReady, message: readyMessage}
	}
	return nil
}
