// Command medlsam-fast localises and segments organs in CT volumes with MedLSAM (MedLAM boxes,
// SAM or MedSAM masks). Run "medlsam-fast help" for the subcommands.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/spf13/pflag"
)

// command is one subcommand. run gets the arguments after the subcommand's name and writes
// its results to stdout; errors go back to main, which prints them and exits non-zero.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout io.Writer) error
	hidden  bool // internal (the GPU worker): left out of usage
}

// commands is filled by the init functions of the files that implement each subcommand.
var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// errUsage marks an error whose message is a usage problem; main prints it with a hint.
var errUsage = errors.New("usage")

func main() {
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	slog.SetDefault(slog.New(h))
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "medlsam-fast: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "medlsam-fast %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "run 'medlsam-fast %s --help' for usage\n", c.name)
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: medlsam-fast COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

// newFlags returns a flag set for a subcommand that reports errors instead of exiting.
func newFlags(name, argsUsage string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: medlsam-fast %s [flags] %s\n\nflags:\n", name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. A help request comes back as pflag.ErrHelp (exit 0); any
// other parse error is a usage error (exit 2).
func parseFlags(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}
