// Added to FerretDB v1.24.2 by event-manager (event_manager/services.py): the SQLite
// backend answers more of a query from the collection's indexes. FerretDB's own code
// pushes down only a filter {_id: <string or ObjectId>}; this file adds
//
//   - equality and $in on a top-level field that leads one of the collection's indexes,
//     for string values of plain ASCII and ObjectIds;
//   - equality, $in, $lt, $lte, $gt and $gte on _id, for ObjectIds (equality and $in
//     also for any string, as FerretDB's own code does);
//   - the descending order of _id (QueryParams.IDSortDesc, asked by the find command:
//     pushdown_find.go), with a $in on an indexed field split into one ordered query
//     per value, merged by SQLite (UNION ALL ... ORDER BY), so that no query sorts,
//     on the index of the field with the fewest matching documents (chooseIndex).
//
// Every condition is necessary for a match under MongoDB's rules, so the rows SQLite
// returns include every matching document; FerretDB's handlers still filter each
// document in memory, which removes the others. Two traps keep conditions out:
//
//   - {f: v} and {f: {$in: [...]}} also match documents whose f is an array holding v,
//     which the JSON text of f never equals: a field is pushed down only while no
//     document has an array there (checked on the field's index, one seek per query);
//   - the JSON text of a string is "..." with escapes that only the encoder decides:
//     only strings of printable ASCII without quote, backslash, < > or & (which
//     encoding/json escapes) are compared, so their text is exactly "<value>";
//   - SQLite reads _ferretdb_sjson->"rowid" (and other column names) as a column:
//     such field names are never pushed down (sqlNames).
//
// sjson stores an ObjectId as the string of its hex digits, so an ObjectId and that
// string have one text: equality is then a false positive that the handler removes,
// and the values of a $in are taken once each.
//
// The order of _id texts is MongoDB's order only among ObjectIds; the find command
// checks that every document it reads has an ObjectId _id and otherwise runs the query
// again on FerretDB's own path.

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/fsql"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

const (
	// pushdownMaxIn is the most values of a $in that are pushed down (a batch of ids to
	// delete, for example; each value is one seek of the index).
	pushdownMaxIn = 1000

	// pushdownMaxArms is the most ordered queries that one sorted query is split into.
	pushdownMaxArms = 64

	// pushdownProbe is how many index entries of one value chooseIndex counts at most.
	pushdownProbe = 1000

	// pushdownSample is how many of the rows a sorted query reads first chooseIndex
	// looks at to tell rare values from common ones.
	pushdownSample = 4096
)

// pushdownField is a field name that needs no quoting in a JSON path or SQL.
var pushdownField = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// sqlNames are names that SQLite reads as a column in _ferretdb_sjson->"name" (it takes a
// double-quoted name as a string only when no column has that name, ignoring case): the
// rowid's aliases, and the backend's columns and the alias of the split query.
var sqlNames = regexp.MustCompile(`(?i)^(rowid|oid|_rowid_|_ferretdb_.*)$`)

// pushdownCond is one condition on the JSON text of a top-level field.
type pushdownCond struct {
	field  string
	op     string   // =, <, <=, >, >= or IN
	values []string // JSON texts
}

// fieldExpr is the SQL expression of a top-level field, written as FerretDB writes it in
// the indexes it creates (metadata.Registry.indexesCreate), so that SQLite matches them.
func fieldExpr(field string) string {
	if field == "_id" {
		return metadata.IDColumn
	}

	return fmt.Sprintf("%s->%q", metadata.DefaultColumn, field)
}

// sql returns the condition's SQL and arguments.
func (c pushdownCond) sql() (string, []any) {
	args := make([]any, len(c.values))
	for i, v := range c.values {
		args[i] = v
	}

	if c.op == "IN" {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(c.values)), ", ")
		return fmt.Sprintf("%s IN (%s)", fieldExpr(c.field), marks), args
	}

	return fmt.Sprintf("%s %s ?", fieldExpr(c.field), c.op), args
}

// pushdownQuery returns the SELECT statement for params and its arguments when this file
// pushes down more than FerretDB's own code would; "" when it does not.
func pushdownQuery(ctx context.Context, db *fsql.DB, meta *metadata.Collection, params *backends.QueryParams) (string, []any, error) { //nolint:lll // for readability
	if meta.Capped() || params.OnlyRecordIDs || params.Sort.Len() != 0 || params.Limit != 0 {
		return "", nil, nil
	}

	conds, err := pushdownConds(ctx, db, meta, params.Filter)
	if err != nil {
		return "", nil, err
	}

	if !params.IDSortDesc && len(conds) == 0 {
		return "", nil, nil
	}

	selectClause := prepareSelectClause(meta.TableName, params.Comment, false, false)

	if !params.IDSortDesc {
		where, args := whereClause(conds)
		return selectClause + where, args, nil
	}

	order := fmt.Sprintf(" ORDER BY %s DESC", metadata.IDColumn)

	indexedBy, err := chooseIndex(ctx, db, meta, conds)
	if err != nil {
		return "", nil, err
	}

	arms := splitIn(conds)
	if len(arms) == 1 {
		where, args := whereClause(arms[0])
		return selectClause + indexedBy + where + order, args, nil
	}

	parts := make([]string, len(arms))
	var args []any

	for i, arm := range arms {
		where, armArgs := whereClause(arm)
		parts[i] = fmt.Sprintf(
			"SELECT %s, %s AS _ferretdb_k FROM %q%s%s",
			metadata.DefaultColumn, metadata.IDColumn, meta.TableName, indexedBy, where,
		)
		args = append(args, armArgs...)
	}

	// SQLite merges the ordered arms (MERGE (UNION ALL)) in a co-routine read in order.
	q := fmt.Sprintf(
		"%s FROM (%s ORDER BY _ferretdb_k DESC)",
		strings.TrimSuffix(selectClause, fmt.Sprintf(" FROM %q", meta.TableName)),
		strings.Join(parts, " UNION ALL "),
	)

	return q, args, nil
}

// chooseIndex returns the INDEXED BY clause of a query in descending _id order: the
// index (field, _id) of the pushed-down field whose values are the rarest where the
// query starts reading (the pushdownSample rows below its _id bound, counted on each
// index), then overall (counted up to pushdownProbe); "" when no field has such an
// index. SQLite has no statistics to tell a rare value from a common one, and a query
// that walks the rows of a common value to find those of a rare one among them reads
// far more than one that walks the rare value's rows (or stops at once on none).
func chooseIndex(ctx context.Context, db *fsql.DB, meta *metadata.Collection, conds []pushdownCond) (string, error) { //nolint:lll // for readability
	type candidate struct {
		index string
		cond  pushdownCond
	}

	var candidates []candidate

	for _, c := range conds {
		if index := sortedIndex(meta, c.field); index != "" && (c.op == "=" || c.op == "IN") {
			candidates = append(candidates, candidate{meta.TableName + "_" + index, c})
		}
	}

	switch len(candidates) {
	case 0:
		return "", nil
	case 1:
		return fmt.Sprintf(" INDEXED BY %q", candidates[0].index), nil
	}

	// the rows the query reads first: below its upper _id bound, down to the sample's end
	var bounds []pushdownCond

	for _, c := range conds {
		if c.field == "_id" && (c.op == "<" || c.op == "<=") {
			bounds = append(bounds, c)
		}
	}

	where, args := whereClause(bounds)
	q := fmt.Sprintf(
		"SELECT %s FROM %q INDEXED BY %q%s ORDER BY %s DESC LIMIT 1 OFFSET %d",
		metadata.IDColumn, meta.TableName, meta.TableName+"__id_", where, metadata.IDColumn,
		pushdownSample-1,
	)

	var floor string
	if err := db.QueryRowContext(ctx, q, args...).Scan(&floor); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", lazyerrors.Error(err)
	}

	if floor != "" {
		bounds = append(bounds, pushdownCond{field: "_id", op: ">=", values: []string{floor}})
	}

	best, fewest := "", [2]int{}

	for _, c := range candidates {
		var counts [2]int

		for i, limit := range []int{pushdownSample, pushdownProbe} {
			scope := bounds
			if i == 1 {
				scope = nil
			}

			for _, v := range c.cond.values {
				cond := pushdownCond{field: c.cond.field, op: "=", values: []string{v}}
				where, args := whereClause(append([]pushdownCond{cond}, scope...))
				q := fmt.Sprintf(
					"SELECT count(*) FROM (SELECT 1 FROM %q INDEXED BY %q%s LIMIT %d)",
					meta.TableName, c.index, where, limit,
				)

				var n int
				if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
					return "", lazyerrors.Error(err)
				}

				counts[i] += n
			}
		}

		if best == "" || counts[0] < fewest[0] || counts[0] == fewest[0] && counts[1] < fewest[1] {
			best, fewest = c.index, counts
		}
	}

	return fmt.Sprintf(" INDEXED BY %q", best), nil
}

// sortedIndex returns the name of the collection's index on (field, _id), or "".
func sortedIndex(meta *metadata.Collection, field string) string {
	if field == "_id" {
		return ""
	}

	for _, index := range meta.Settings.Indexes {
		if len(index.Key) == 2 && index.Key[0].Field == field && index.Key[1].Field == "_id" {
			return index.Name
		}
	}

	return ""
}

// whereClause returns " WHERE ..." for conds (or "") and its arguments.
func whereClause(conds []pushdownCond) (string, []any) {
	if len(conds) == 0 {
		return "", nil
	}

	parts := make([]string, len(conds))
	var args []any

	for i, c := range conds {
		var condArgs []any
		parts[i], condArgs = c.sql()
		args = append(args, condArgs...)
	}

	return " WHERE " + strings.Join(parts, " AND "), args
}

// splitIn returns the conditions once per combination of the values of their IN
// conditions on fields other than _id, so that each combination is one ordered range of
// an index; conds alone when there would be more than pushdownMaxArms.
func splitIn(conds []pushdownCond) [][]pushdownCond {
	arms := [][]pushdownCond{nil}

	for _, c := range conds {
		if c.op != "IN" || c.field == "_id" || len(c.values) == 1 {
			for i := range arms {
				arms[i] = append(arms[i], c)
			}

			continue
		}

		if len(arms)*len(c.values) > pushdownMaxArms {
			return [][]pushdownCond{conds}
		}

		next := make([][]pushdownCond, 0, len(arms)*len(c.values))

		for _, arm := range arms {
			for _, v := range c.values {
				one := pushdownCond{field: c.field, op: "=", values: []string{v}}
				next = append(next, append(append([]pushdownCond(nil), arm...), one))
			}
		}

		arms = next
	}

	return arms
}

// pushdownConds returns the conditions of filter that SQLite can check.
func pushdownConds(ctx context.Context, db *fsql.DB, meta *metadata.Collection, filter *types.Document) ([]pushdownCond, error) { //nolint:lll // for readability
	if filter.Len() == 0 {
		return nil, nil
	}

	var conds []pushdownCond

	keys, values := filter.Keys(), filter.Values()

	for i, field := range keys {
		if !pushdownField.MatchString(field) || sqlNames.MatchString(field) {
			continue
		}

		found := fieldConds(field, values[i])
		if len(found) == 0 {
			continue
		}

		if field != "_id" { // MongoDB refuses an array _id, and so does FerretDB
			if !leadsIndex(meta, field) {
				continue
			}

			arrays, err := holdsArrays(ctx, db, meta.TableName, field)
			if err != nil {
				return nil, err
			}

			if arrays {
				continue
			}
		}

		conds = append(conds, found...)
	}

	return conds, nil
}

// fieldConds returns the conditions of one field's part of a filter.
func fieldConds(field string, value any) []pushdownCond {
	if text, ok := valueText(field, value); ok {
		return []pushdownCond{{field: field, op: "=", values: []string{text}}}
	}

	ops, ok := value.(*types.Document)
	if !ok || ops.Len() == 0 {
		return nil
	}

	for _, op := range ops.Keys() {
		if !strings.HasPrefix(op, "$") {
			return nil // an embedded document to equal
		}
	}

	var conds []pushdownCond

	opValues := ops.Values()

	for i, op := range ops.Keys() {
		switch op {
		case "$eq":
			if text, ok := valueText(field, opValues[i]); ok {
				conds = append(conds, pushdownCond{field: field, op: "=", values: []string{text}})
			}

		case "$in":
			if texts, ok := inTexts(field, opValues[i]); ok {
				conds = append(conds, pushdownCond{field: field, op: "IN", values: texts})
			}

		case "$lt", "$lte", "$gt", "$gte":
			// comparisons match within one type; an ObjectId's text orders as its bytes
			id, ok := opValues[i].(types.ObjectID)
			if field != "_id" || !ok {
				continue
			}

			sqlOp := map[string]string{"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}[op]
			text, _ := valueText(field, id)
			conds = append(conds, pushdownCond{field: field, op: sqlOp, values: []string{text}})
		}
	}

	return conds
}

// inTexts returns the JSON texts of a $in's values when every one can be compared.
func inTexts(field string, value any) ([]string, bool) {
	arr, ok := value.(*types.Array)
	if !ok || arr.Len() == 0 || arr.Len() > pushdownMaxIn {
		return nil, false
	}

	texts := make([]string, 0, arr.Len())

	for i := range arr.Len() {
		text, ok := valueText(field, must.NotFail(arr.Get(i)))
		if !ok {
			return nil, false
		}

		// once each: an ObjectId and its hex string have one text, and each arm of a
		// split query must be a different value's documents
		if !slices.Contains(texts, text) {
			texts = append(texts, text)
		}
	}

	return texts, true
}

// valueText returns the JSON text that a stored value equal to v has, when that text is
// certain: ObjectIds always, strings of plain ASCII (any string for _id, as FerretDB's
// own pushdown of _id does).
func valueText(field string, v any) (string, bool) {
	switch v := v.(type) {
	case types.ObjectID:
		return string(must.NotFail(sjson.MarshalSingleValue(v))), true
	case string:
		if field == "_id" {
			return string(must.NotFail(sjson.MarshalSingleValue(v))), true
		}

		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e || strings.IndexByte(`"\<>&`, c) >= 0 {
				return "", false
			}
		}

		return `"` + v + `"`, true
	default:
		return "", false
	}
}

// leadsIndex reports whether one of the collection's indexes starts with field.
func leadsIndex(meta *metadata.Collection, field string) bool {
	for _, index := range meta.Settings.Indexes {
		if len(index.Key) > 0 && index.Key[0].Field == field {
			return true
		}
	}

	return false
}

// holdsArrays reports whether some document has an array as field (its JSON text starts
// with '['), found on the index that field leads.
func holdsArrays(ctx context.Context, db *fsql.DB, table, field string) (bool, error) {
	expr := fieldExpr(field)
	q := fmt.Sprintf(`SELECT 1 FROM %q WHERE %s >= '[' AND %s < '\' LIMIT 1`, table, expr, expr)

	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return false, lazyerrors.Error(err)
	}

	defer rows.Close()

	found := rows.Next()

	if err = rows.Err(); err != nil {
		return false, lazyerrors.Error(err)
	}

	return found, nil
}
