// dockerignore-oracle answers, for each JSON line {"Ignore": "<.dockerignore text>", "Path":
// "..."} on stdin, whether Docker excludes the path from the build context: "true", "false" or
// "error: ...", one line each. It is Docker's own code (github.com/moby/patternmatcher: the file
// reader and the matcher the builders use), so the unit tests need no copy of its rules.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type query struct {
	Ignore string
	Path   string
}

func answer(line []byte) string {
	var q query
	if err := json.Unmarshal(line, &q); err != nil {
		return "error: " + err.Error()
	}
	patterns, err := ignorefile.ReadAll(strings.NewReader(q.Ignore))
	if err != nil {
		return "error: " + err.Error()
	}
	matcher, err := patternmatcher.New(patterns)
	if err != nil {
		return "error: " + err.Error()
	}
	excluded, err := matcher.MatchesOrParentMatches(q.Path)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprint(excluded)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		// One answer per line, unbuffered: callers keep the process and ask line by line.
		fmt.Println(answer(in.Bytes()))
	}
}
