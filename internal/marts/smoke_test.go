package marts

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, pgtest.NewDatabase(t), store.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Refresh(ctx, st.DB(), log); err != nil {
		t.Fatal(err)
	}
	if _, err := Refresh(ctx, st.DB(), log); err != nil {
		t.Fatal(err)
	}
}
