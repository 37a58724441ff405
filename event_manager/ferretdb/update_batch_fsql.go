// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): a statement
// prepared once in a transaction and run for each document of a batched update
// (update_batch_sqlite.go). Each run of a statement starts with an empty cache of
// parsed JSON, where one statement over many rows compares each document with the
// last ones parsed (a fifth of the server's time with documents of one shape).

package fsql

import (
	"context"
	"database/sql"
)

// PrepareContext calls [*sql.Tx.PrepareContext].
func (tx *Tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return tx.sqlTx.PrepareContext(ctx, query)
}
