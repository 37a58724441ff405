// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): what the
// handler's batched update (update_batch.go) asks of a backend's UpdateAll
// (UpdateAllParams.Batch). Only the SQLite backend answers it (update_batch_sqlite.go);
// another leaves Done false, and the handler then runs the command on its own path.

package backends

import "github.com/FerretDB/FerretDB/internal/types"

// UpdateBatch asks UpdateAll to read the documents with the given _ids, have Apply
// change them, and write the changed ones, all as of one moment: the documents that
// Apply was last given are still the same when the changed ones are written (Apply may
// be called again with documents read anew).
type UpdateBatch struct {
	// IDs are distinct _id values.
	IDs []any

	// Apply is given the document of each _id (nil where there is none) and returns the
	// changed ones (nil where unchanged), at the same positions, or false to write
	// nothing.
	Apply func(docs []*types.Document) ([]*types.Document, bool)

	// Done is set by the backend once the changed documents are written.
	Done bool
}
