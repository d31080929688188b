// Package parse holds the line-level parsing of Vigil's container-log
// receiver: the two formats container runtimes write under /var/log/pods
// (CRI and Docker json-file), the kubelet's path layout, JSON bodies into
// log records, and the joining of multi-line records.
//
// Everything here is on the per-line hot path, so the common case allocates
// nothing: CRI returns slices of its input, Docker unescapes into a buffer the
// caller passes and gets back, ParsePodPath returns substrings of its input,
// and JSONParser and Joiner keep their buffers between calls. A returned
// slice is valid until the caller reuses the buffer it aliases (for CRI, the
// input line; for Docker, the scratch buffer; for Joiner, the next call).
// Errors name what is wrong and the byte offset, and quote at most 32 bytes of
// the input. No input makes a function here panic (see the Fuzz* tests).
//
// # Why a JSON scanner of our own, not fastjson
//
// JSON (Docker lines and bodies) is read by a strict scanner in this package
// (json_scan.go) rather than github.com/valyala/fastjson v1.6.10, for what
// fastjson's parser.go and validate.go do, each checked against v1.6.10:
//
//   - fastjson.Parser is lenient by design: it accepts {"a":1.2.3}, NaN and
//     Inf, raw control characters in strings, and keeps invalid escapes
//     (\q) and lone surrogates (\ud800) as literal text. A body that is not
//     JSON must stay the record's raw body (the receiver's contract), so a
//     strict pass is needed anyway.
//   - fastjson.Validate, its strict pass, has no depth limit (only Parser
//     has MaxDepth = 300): a line of a few million '[' (some 7 MB) exhausts
//     the 1 GiB goroutine stack, a fatal error that recover cannot catch.
//   - Its errors quote the rest of the input unbounded ("unexpected value
//     found: %q": 100 KB of error for a 100 KB line) and give no offset.
//   - Parser copies the input and builds a tree of Values that we would then
//     walk into pcommon: three passes. Ours makes two over the input bytes
//     (check it and find the members; then decode into the record), with no
//     tree, and decodes strings in the same pass that finds their end.
//
// BenchmarkJSONParser compares the two on the same line (fastjson without a
// strict pass, which flatters it), and encoding/json into map[string]any
// plus pcommon.Map.FromRaw, which is what stanza's json_parser does.
package parse
