// Command chown is the node test's stand-in for the chart's storage init
// image: `chown UID:GID PATH`, numeric ids only.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: chown UID:GID PATH")
		os.Exit(2)
	}
	u, g, ok := strings.Cut(os.Args[1], ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "chown: %q is not UID:GID\n", os.Args[1])
		os.Exit(2)
	}
	if err := os.Chown(os.Args[2], uid, gid); err != nil {
		fmt.Fprintln(os.Stderr, "chown:", err)
		os.Exit(1)
	}
}
