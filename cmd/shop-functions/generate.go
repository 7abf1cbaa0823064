package main

//go:generate go run ../gen-registry -stack ../../stack.yml -out registry_gen.go
