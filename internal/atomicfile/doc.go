// Package atomicfile owns crash-safe replacement of files: content is written
// to a temporary file in the target's directory, fsynced, renamed over the
// target and the directory fsynced, so that a process killed at any instant
// leaves either the old or the new file visible, never a torn one.
//
// Temporary files are named TempPrefix+base+"-*". A writer killed before its
// rename leaves one behind; RemoveStale deletes those that are old enough
// that no live writer can still own them.
package atomicfile
