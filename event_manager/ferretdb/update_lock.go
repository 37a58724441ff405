// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): FerretDB
// updates a document by reading it, applying the update in memory and writing it back,
// the read and the write in separate transactions for findAndModify and for each
// statement of an update command. Two connections updating one document at the same
// moment could then both read it before either writes, and one update was lost: a $push
// to a call's queue by the API while a worker's $pull took another entry out, or two
// $inc of one counter. MongoDB makes every single-document update atomic.
//
// So each update and findAndModify command runs alone among those on its collection:
// a mutex per collection, held from the command's read to its last write. SQLite
// writes one transaction at a time anyway; what waits now is the read of the next
// update of the same collection. Inserts, deletes and reads do not wait.

package handler

import "sync"

// collectionLocks holds a *sync.Mutex per "database\x00collection".
var collectionLocks sync.Map

// lockCollection waits for the update lock of the collection and returns its release.
func lockCollection(db, collection string) func() {
	m, _ := collectionLocks.LoadOrStore(db+"\x00"+collection, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()

	return mu.Unlock
}
