// Package terraform holds the AWS deployment (the .tf files beside this
// one) and the Go tests that check it: every file parses, every reference
// resolves, and the IAM policies grant exactly what the code calls.
package terraform
