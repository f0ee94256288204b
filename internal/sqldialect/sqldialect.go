// Package sqldialect holds what the SQLite and PostgreSQL stores share
// about the two dialects.
package sqldialect

import (
	"strconv"
	"strings"
)

// Dollar rewrites ? placeholders as PostgreSQL's $1, $2, …, so a store can
// write each query once for both databases. Queries must not hold a
// literal question mark.
func Dollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}
