module vmdkcarve

go 1.26.8

require github.com/cespare/xxhash/v2 v2.3.0

require golang.org/x/sync v0.25.0 // indirect
