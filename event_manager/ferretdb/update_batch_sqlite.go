// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): the SQLite
// backend's side of an update command whose statements each update one document by its
// _id (update_batch.go): the documents are read with one query, changed by the handler
// in memory, and written in one transaction by one prepared statement
// (update_batch_fsql.go), where FerretDB's own path runs one query, one transaction and
// one statement to prepare per document.
//
// The documents are read and changed before the transaction, which holds the database's
// write lock only to write them. It first reads them again: when they are the same
// texts (which hold each document's _id, so the same set of texts is the same
// documents, and no document has appeared for an _id that had none), every statement
// sees at the commit exactly what it saw when it ran. When they are not, they are
// changed again from what the transaction read, under its lock. Either way the command
// has the effect of its statements run in order at the commit, with nothing between
// them.

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/fsql"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// errBatchDropped rolls back a batch that its Apply gave up.
var errBatchDropped = errors.New("batch dropped")

// queryFunc is the QueryContext of a database or of a transaction.
type queryFunc func(ctx context.Context, query string, args ...any) (*fsql.Rows, error)

// updateBatch answers UpdateAll for params.Batch (backends.UpdateBatch).
func updateBatch(ctx context.Context, db *fsql.DB, meta *metadata.Collection, params *backends.UpdateAllParams) (*backends.UpdateAllResult, error) { //nolint:lll // for readability
	var res backends.UpdateAllResult

	batch := params.Batch
	if meta.Capped() || len(batch.IDs) == 0 || len(batch.IDs) > pushdownMaxIn {
		return &res, nil
	}

	keys := make([]any, len(batch.IDs))

	for i, id := range batch.IDs {
		text, err := sjson.MarshalSingleValue(id)
		if err != nil {
			return nil, lazyerrors.Error(err)
		}

		keys[i] = string(text)
	}

	read := fmt.Sprintf(`SELECT %s FROM %q WHERE %s IN (%s)`,
		metadata.DefaultColumn, meta.TableName, metadata.IDColumn, marks(len(keys)))

	texts, err := readTexts(ctx, db.QueryContext, read, keys)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	writes, written, err := applyBatch(batch, keys, texts)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	if written == nil {
		return &res, nil
	}

	err = db.InTransaction(ctx, func(tx *fsql.Tx) error {
		now, err := readTexts(ctx, tx.QueryContext, read, keys)
		if err != nil {
			return lazyerrors.Error(err)
		}

		if !maps.Equal(texts, now) {
			if writes, written, err = applyBatch(batch, keys, now); err != nil {
				return lazyerrors.Error(err)
			}

			if written == nil {
				return errBatchDropped
			}
		}

		return writeBatch(ctx, tx, meta, writes)
	})

	if errors.Is(err, errBatchDropped) {
		return &res, nil
	}

	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	batch.Done = true
	params.Docs = written // for the oplog decorator
	res.Updated = int32(len(written))

	return &res, nil
}

// applyBatch has batch.Apply change the documents of texts, and returns the arguments
// of the changed ones' updates (document, _id) and the changed documents; a nil slice of
// documents when Apply gives up.
func applyBatch(batch *backends.UpdateBatch, keys []any, texts map[string]struct{}) ([][2]any, []*types.Document, error) { //nolint:lll // for readability
	byID := make(map[string]*types.Document, len(texts))

	for text := range texts {
		doc, err := sjson.Unmarshal([]byte(text))
		if err != nil {
			return nil, nil, lazyerrors.Error(err)
		}

		id, err := doc.Get("_id")
		if err != nil {
			return nil, nil, lazyerrors.Error(err)
		}

		key, err := sjson.MarshalSingleValue(id)
		if err != nil {
			return nil, nil, lazyerrors.Error(err)
		}

		byID[string(key)] = doc
	}

	docs := make([]*types.Document, len(keys))
	for i, key := range keys {
		docs[i] = byID[key.(string)]
	}

	changed, ok := batch.Apply(docs)
	if !ok {
		return nil, nil, nil
	}

	writes := [][2]any{}
	written := []*types.Document{}

	for i, doc := range changed {
		if doc == nil {
			continue
		}

		b, err := sjson.Marshal(doc)
		if err != nil {
			return nil, nil, lazyerrors.Error(err)
		}

		writes = append(writes, [2]any{string(b), keys[i]})
		written = append(written, doc)
	}

	return writes, written, nil
}

// writeBatch updates each document by its _id with one prepared statement.
func writeBatch(ctx context.Context, tx *fsql.Tx, meta *metadata.Collection, writes [][2]any) error { //nolint:lll // for readability
	if len(writes) == 0 {
		return nil
	}

	q := fmt.Sprintf(`UPDATE %q SET %s = ? WHERE %s = ?`,
		meta.TableName, metadata.DefaultColumn, metadata.IDColumn)

	stmt, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return lazyerrors.Error(err)
	}
	defer stmt.Close()

	for _, w := range writes {
		r, err := stmt.ExecContext(ctx, w[0], w[1])
		if err != nil {
			return lazyerrors.Error(err)
		}

		if n, err := r.RowsAffected(); err != nil || n != 1 {
			return lazyerrors.Errorf("updated %d documents of 1 (%v)", n, err)
		}
	}

	return nil
}

// readTexts runs q, which reads documents, and returns their texts.
func readTexts(ctx context.Context, query queryFunc, q string, args []any) (map[string]struct{}, error) { //nolint:lll // for readability
	rows, err := query(ctx, q, args...)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}
	defer rows.Close()

	texts := make(map[string]struct{}, len(args))

	for rows.Next() {
		var text string
		if err = rows.Scan(&text); err != nil {
			return nil, lazyerrors.Error(err)
		}

		texts[text] = struct{}{}
	}

	if err = rows.Err(); err != nil {
		return nil, lazyerrors.Error(err)
	}

	return texts, nil
}

// marks returns n SQL placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
