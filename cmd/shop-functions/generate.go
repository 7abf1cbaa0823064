package main

//go:generate go run ../gen-bundles -root ../..
//go:generate go run ../gen-registry -stack ../../stack.yml,../../stack.ce.yml -out registry_gen.go
