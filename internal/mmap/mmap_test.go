package mmap

import (
	"errors"
	"testing"
	"unsafe"
)

// addrErr is a panic value as the runtime makes for a fault.
type addrErr uintptr

func (a addrErr) Error() string  { return "fault" }
func (a addrErr) Addr() uintptr  { return uintptr(a) }
func (a addrErr) RuntimeError()  {}
func (a addrErr) String() string { return a.Error() }

func TestFault(t *testing.T) {
	data := make([]byte, 3*PageSize)
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	for _, tc := range []struct {
		name string
		p    any
		off  int64
		ok   bool
	}{
		{"first byte", addrErr(lo), 0, true},
		{"inside", addrErr(lo + 5000), 5000, true},
		{"in the page before (a mapping starts on a page)", addrErr(lo - 100), 0, true},
		{"in the page after the end", addrErr(lo + uintptr(len(data)) + 10), int64(len(data)) + 10, true},
		{"far after", addrErr(lo + uintptr(len(data)) + uintptr(2*PageSize)), 0, false},
		{"nil dereference", addrErr(0), 0, false},
		{"not a fault", errors.New("bug"), 0, false},
	} {
		off, ok := Fault(tc.p, data)
		if ok != tc.ok || (ok && off != tc.off) {
			t.Errorf("%s: %d, %v; want %d, %v", tc.name, off, ok, tc.off, tc.ok)
		}
	}
	if _, ok := Fault(addrErr(lo), nil); ok {
		t.Errorf("a fault on no mapping was the mapping's")
	}
}
