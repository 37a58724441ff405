// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): an update
// command whose statements each update one document by its _id (no multi, no upsert,
// each _id once, as a bulk_write of UpdateOne by _id sends) is answered in one read and
// one transaction of the backend (backends.UpdateBatch, update_batch_sqlite.go) instead
// of one read and one transaction per statement: a fifth of the server's time per
// statement went to committing it alone.
//
// Each statement is applied to its document by FerretDB's own code
// (common.UpdateDocument), in order. The statements touch distinct documents, so none
// sees another's change, and the backend writes them as they were when the statements
// ran (applying them again under its lock if they changed meanwhile): the result is that
// of running the statements in order at the commit. A statement that fails (an operator
// on a value of the wrong type, for example) writes nothing of the batch, and the
// command runs again on FerretDB's own path, which answers it exactly as before; so does
// any command of another shape.

package handler

import (
	"context"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/handler/common"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/iterator"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// updateBatchMax is the most statements of a command that are answered together.
const updateBatchMax = 1000

// updateBatch answers an update command of statements by distinct _ids together; false
// when the command is of another shape or its documents changed while it ran (nothing
// is then written).
func (h *Handler) updateBatch(ctx context.Context, db backends.Database, params *common.UpdateParams) (bool, int32, int32, error) { //nolint:lll // for readability
	ids, ok := batchIDs(params.Updates)
	if h.DisablePushdown || !ok {
		return false, 0, 0, nil
	}

	c, err := db.Collection(params.Collection)
	if err != nil {
		return false, 0, 0, nil // FerretDB's own path answers with the right error
	}

	var matched, modified int32

	apply := func(docs []*types.Document) ([]*types.Document, bool) {
		matched, modified = 0, 0
		changed := make([]*types.Document, len(docs))

		for i := range params.Updates {
			if docs[i] == nil {
				continue
			}

			u := params.Updates[i]
			closer := iterator.NewMultiCloser()
			kept := &keptUpdate{Collection: c}
			iter := common.FilterIterator(&oneDocument{doc: docs[i]}, closer, u.Filter)

			res, err := common.UpdateDocument(ctx, kept, "update", iter, &u)
			closer.Close()

			if err != nil {
				return nil, false
			}

			matched += res.Matched.Count
			modified += res.Modified.Count
			changed[i] = kept.doc
		}

		return changed, true
	}

	batch := &backends.UpdateBatch{IDs: ids, Apply: apply}
	if _, err = c.UpdateAll(ctx, &backends.UpdateAllParams{Batch: batch}); err != nil {
		return false, 0, 0, lazyerrors.Error(err)
	}

	if !batch.Done {
		return false, 0, 0, nil
	}

	return true, matched, modified, nil
}

// batchIDs returns the _id of each statement when every statement updates one
// document by a distinct _id (an ObjectId or a string), of at least two and at most
// updateBatchMax statements.
func batchIDs(updates []common.Update) ([]any, bool) {
	if len(updates) < 2 || len(updates) > updateBatchMax {
		return nil, false
	}

	ids := make([]any, len(updates))
	seen := make(map[string]struct{}, len(updates))

	for i, u := range updates {
		if u.Multi || u.Upsert || u.Filter == nil || u.Filter.Len() != 1 || u.Update == nil {
			return nil, false
		}

		id, err := u.Filter.Get("_id")
		if err != nil {
			return nil, false
		}

		var key string

		switch id := id.(type) {
		case types.ObjectID:
			key = "o" + string(id[:])
		case string:
			key = "s" + id
		default:
			return nil, false
		}

		if _, ok := seen[key]; ok {
			return nil, false
		}

		seen[key] = struct{}{}
		ids[i] = id
	}

	return ids, true
}

// keptUpdate is a collection whose UpdateAll keeps the document instead of writing it.
type keptUpdate struct {
	backends.Collection
	doc *types.Document
}

// UpdateAll implements backends.Collection interface.
func (k *keptUpdate) UpdateAll(_ context.Context, params *backends.UpdateAllParams) (*backends.UpdateAllResult, error) { //nolint:lll // for readability
	if len(params.Docs) != 1 || params.Batch != nil {
		return nil, lazyerrors.New("one document expected")
	}

	k.doc = params.Docs[0]

	return &backends.UpdateAllResult{Updated: 1}, nil
}

// InsertAll implements backends.Collection interface: statements of a batch never
// insert (no upsert).
func (k *keptUpdate) InsertAll(context.Context, *backends.InsertAllParams) (*backends.InsertAllResult, error) { //nolint:lll // for readability
	return nil, lazyerrors.New("a batched update does not insert")
}

// oneDocument iterates over one document.
type oneDocument struct {
	doc  *types.Document
	done bool
}

// Next implements iterator.Interface.
func (it *oneDocument) Next() (struct{}, *types.Document, error) {
	if it.done || it.doc == nil {
		return struct{}{}, nil, iterator.ErrIteratorDone
	}

	it.done = true

	return struct{}{}, it.doc, nil
}

// Close implements iterator.Interface.
func (it *oneDocument) Close() {
	it.done = true
}
