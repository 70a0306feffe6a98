// Package formaterr words a format package's errors one way: every codec
// (vmdk, fs/ntfs, fs/ext4) has a FormatError of the same fields, and its
// message is Message's.
package formaterr

import "fmt"

// Message is "pkg: structure: field = value at byte offset", then
// ": reason" when there is one.
func Message(pkg, structure, field string, value any, offset int64, reason string) string {
	msg := fmt.Sprintf("%s: %s: %s = %v at byte %d", pkg, structure, field, value, offset)
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}

// ImageError is a format package's error with the image offset of the
// structure it is about: the codecs see only the structure's bytes, so
// their offsets are within it; a caller that read it from the evidence
// knows where it lies and says so with AtImage.
type ImageError struct {
	ImageOffset int64
	Err         error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("%v (structure at image offset %d)", e.Err, e.ImageOffset)
}

func (e *ImageError) Unwrap() error { return e.Err }

// AtImage wraps err (nil stays nil) with the image offset of the
// structure it is about.
func AtImage(imageOffset int64, err error) error {
	if err == nil {
		return nil
	}
	return &ImageError{ImageOffset: imageOffset, Err: err}
}
