// Command logger is the node test's workload: it writes numbered lines to
// standard output, which the container runtime writes to the files under
// /var/log/pods that the agent reads. -count lines, one every -every; every
// -long-th line is longer than the runtime's 16 KiB line buffer, so the
// runtime splits it into partial lines the agent must merge. Then it sleeps,
// so the pod stays Running.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	count := flag.Int("count", 1000, "lines to write")
	every := flag.Duration("every", 10*time.Millisecond, "pause between lines")
	long := flag.Int("long", 100, "every n-th line is 40 KiB long (0: none)")
	prefix := flag.String("prefix", "line", "first word of every line")
	flag.Parse()
	for i := 1; i <= *count; i++ {
		pad := ""
		if *long > 0 && i%*long == 0 {
			pad = " " + strings.Repeat("x", 40<<10)
		}
		fmt.Fprintf(os.Stdout, "%s %d%s\n", *prefix, i, pad)
		time.Sleep(*every)
	}
	for {
		time.Sleep(time.Hour)
	}
}
