package parse

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestHasStrSpecial(t *testing.T) {
	// Every byte value at every position, in a word of plain bytes.
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			want := !strPlain[c]
			if got := hasStrSpecial(binary.LittleEndian.Uint64(w)); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
	// Random words, against the byte table.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		w := rng.Uint64()
		if rng.IntN(2) == 0 { // mostly plain bytes: set each byte's 0x20 or 0x40 bit
			w |= 0x4040404040404040 & rng.Uint64()
			w |= 0x2020202020202020
		}
		want := false
		for k := range 8 {
			want = want || !strPlain[byte(w>>(8*k))]
		}
		if got := hasStrSpecial(w); got != want {
			t.Fatalf("%#016x: %v, want %v", w, got, want)
		}
	}
}
