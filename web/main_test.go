package web

import (
	"os"
	"testing"

	"github.com/elastidial/elastidial/internal/testenv"
)

// TestMain fails the package when its tests leave a file in its source
// folder: they write under t.TempDir().
func TestMain(m *testing.M) { os.Exit(testenv.RunInTree(m)) }
