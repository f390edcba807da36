// Package gunzip decompresses gzip streams for the NIfTI reader. With cgo (the default) it
// drives the system zlib, whose inflate decodes CT volumes about 1.5x faster than the
// fastest pure-Go inflate (github.com/klauspost/compress: 43 ms against 28 ms for the
// shared 2.2 MB abdomen CT on the development machine), and inflate is where a .nii.gz read
// spends 85 % of its time. Built with the tag purego, or without cgo, it uses klauspost's
// pure-Go gzip instead; both decode concatenated members as gzip(1) does and verify every
// member's CRC-32 and length.
//
// cgo rules: zlib's state and its input buffer live in C memory; the output slice is handed
// to C only for the duration of one call, and the C side clears its pointer to it before
// returning, so C never keeps a Go pointer.
package gunzip
