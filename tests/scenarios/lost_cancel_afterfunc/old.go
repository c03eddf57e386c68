//go:build !go1.21

// Before go1.21 there is no context.AfterFunc: a healthy program, no finding.
package main

import "example.com/scenarios/internal/standin"

func main() { standin.Main() }
