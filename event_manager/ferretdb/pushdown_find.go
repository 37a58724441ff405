// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): a find sorted
// by {_id: -1} with a small limit reads its documents in that order from the backend
// (backends.QueryParams.IDSortDesc, pushdown_sqlite.go) and stops once it has enough,
// instead of reading and sorting the whole collection.
//
// The backend orders by the JSON text of _id, which is MongoDB's order among ObjectIds
// only. So the documents are read ahead (skip + limit of them, at most
// idSortMaxWindow) before any is returned, and if one of them has an _id that is not an
// ObjectId, they are dropped and the query runs again on FerretDB's own path (filter
// and sort in memory). That is enough: in descending text order every _id that is not
// a string ("...") comes before every ObjectId, and a string _id among the ObjectIds is
// read where it falls; so when the first documents are all ObjectIds, they are the
// largest ObjectIds, in order, which is what MongoDB answers.

package handler

import (
	"context"
	"errors"
	"sync"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/handler/common"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/iterator"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// idSortMaxWindow is the most documents (skip + limit) that a find reads ahead.
const idSortMaxWindow = 1000

// queryFind runs the backend query of a find command.
func (h *Handler) queryFind(ctx context.Context, coll backends.Collection, qp *backends.QueryParams, params *common.FindParams, capped bool) (*backends.QueryResult, error) { //nolint:lll // for readability
	window := params.Skip + params.Limit

	if h.DisablePushdown || capped || params.Tailable || qp.Sort != nil ||
		params.Limit <= 0 || window > idSortMaxWindow || !sortsByIDDesc(params.Sort) {
		return coll.Query(ctx, qp)
	}

	sorted := *qp
	sorted.IDSortDesc = true

	iter := &idSortedIterator{
		ctx:    ctx,
		coll:   coll,
		plain:  qp,
		sorted: &sorted,
		filter: params.Filter,
		window: window,
	}

	return &backends.QueryResult{Iter: iter}, nil
}

// sortsByIDDesc reports whether a (validated) sort document is {_id: -1}.
func sortsByIDDesc(sort *types.Document) bool {
	if sort.Len() != 1 || sort.Keys()[0] != "_id" {
		return false
	}

	v, _ := sort.Get("_id")
	order, ok := v.(int64)

	return ok && order == -1
}

// idSortedIterator returns the first documents of a query in descending _id order, or
// the query's documents from FerretDB's own path when those are not all ObjectIds.
type idSortedIterator struct {
	ctx    context.Context
	coll   backends.Collection
	plain  *backends.QueryParams
	sorted *backends.QueryParams
	filter *types.Document
	window int64

	m       sync.Mutex
	started bool
	closed  bool
	docs    []*types.Document
	rest    types.DocumentsIterator // FerretDB's own path, after a fallback
}

// Next implements iterator.Interface.
func (iter *idSortedIterator) Next() (struct{}, *types.Document, error) {
	iter.m.Lock()
	defer iter.m.Unlock()

	var unused struct{}

	if iter.closed {
		return unused, nil, iterator.ErrIteratorDone
	}

	if !iter.started {
		iter.started = true

		if err := iter.readAhead(); err != nil {
			return unused, nil, err
		}
	}

	if iter.rest != nil {
		return iter.rest.Next()
	}

	if len(iter.docs) == 0 {
		return unused, nil, iterator.ErrIteratorDone
	}

	doc := iter.docs[0]
	iter.docs = iter.docs[1:]

	return unused, doc, nil
}

// readAhead reads the first matching documents in descending _id order, or starts
// FerretDB's own path when one of them has an _id that is not an ObjectId.
func (iter *idSortedIterator) readAhead() error {
	res, err := iter.coll.Query(iter.ctx, iter.sorted)
	if err != nil {
		return lazyerrors.Error(err)
	}

	closer := iterator.NewMultiCloser(res.Iter)
	defer closer.Close()

	matching := common.FilterIterator(res.Iter, closer, iter.filter)

	for int64(len(iter.docs)) < iter.window {
		_, doc, err := matching.Next()
		if errors.Is(err, iterator.ErrIteratorDone) {
			return nil
		}

		if err != nil {
			return lazyerrors.Error(err)
		}

		id, _ := doc.Get("_id")
		if _, ok := id.(types.ObjectID); !ok {
			iter.docs = nil
			closer.Close()

			if res, err = iter.coll.Query(iter.ctx, iter.plain); err != nil {
				return lazyerrors.Error(err)
			}

			iter.rest = res.Iter

			return nil
		}

		iter.docs = append(iter.docs, doc)
	}

	return nil
}

// Close implements iterator.Interface.
func (iter *idSortedIterator) Close() {
	iter.m.Lock()
	defer iter.m.Unlock()

	iter.closed = true
	iter.docs = nil

	if iter.rest != nil {
		iter.rest.Close()
	}
}

// check interfaces
var (
	_ types.DocumentsIterator = (*idSortedIterator)(nil)
)
