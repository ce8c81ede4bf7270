// Command etcd is etcd's server main, built at the version the pinned
// k8s.io/kubernetes module requires, so apiserver and etcd always match.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
