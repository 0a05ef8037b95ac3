package etl

import (
	"errors"
	"testing"
)

func TestOutcomeNamesAreTheMetricLabels(t *testing.T) {
	want := map[Outcome]string{Loaded: "loaded", Unchanged: "unchanged", NoData: "no_data", Failed: "failed", Skipped: "skipped"}
	for o, name := range want {
		if o.String() != name {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), name)
		}
	}
	if s := Outcome(0).String(); s != "Outcome(0)" {
		t.Errorf("the zero Outcome prints as %q: it must not pass for an outcome", s)
	}
}

func TestResultAddCountsEachOutcome(t *testing.T) {
	var r Result
	failure := errors.New("boom")
	for _, rep := range []DayReport{
		{Outcome: Loaded, Summary: Summary{Loaded: 10, Rejected: 1}},
		{Outcome: Loaded, Summary: Summary{Loaded: 5}},
		{Outcome: Unchanged, Summary: Summary{Fetched: 7}},
		{Outcome: NoData},
		{Outcome: Skipped},
		{Outcome: Failed, Summary: Summary{Rejected: 3}, Err: failure},
	} {
		r.Add(rep)
	}
	want := RunTotals{DaysLoaded: 2, DaysUnchanged: 1, DaysNoData: 1, DaysFailed: 1, RowsLoaded: 15, RowsRejected: 4}
	if r.Totals != want || r.Skipped != 1 || len(r.Failed) != 1 || r.Failed[0].Err != failure {
		t.Fatalf("result %+v, want totals %+v, 1 skipped, 1 failed", r, want)
	}
	for o, n := range map[Outcome]int{Loaded: 2, Unchanged: 1, NoData: 1, Failed: 1, Skipped: 0} {
		if got := r.Totals.Days(o); got != n {
			t.Errorf("Days(%v) = %d, want %d", o, got, n)
		}
	}
}
