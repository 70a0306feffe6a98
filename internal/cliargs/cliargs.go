// Package cliargs parses a command line whose flags may come before,
// between or after its positional arguments (`carve IMAGE -o CASE` as
// well as `carve -o CASE IMAGE`), which the standard flag package stops
// at the first positional argument to refuse.
package cliargs

import "flag"

// Parse parses args with fs, resuming after each positional argument,
// and returns the positional arguments in order.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
