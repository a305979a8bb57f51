// Command vulncheck-control is the negative control of make vulncheck: it
// calls golang.org/x/text/language.Parse at v0.3.5, which has a known
// vulnerability (GO-2021-0113, out-of-bounds read), so govulncheck must
// refuse it. If it ever passes, the database or the check is broken.
package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() {
	fmt.Println(language.Parse("en"))
}
