package faaslocal

import "strings"

// ConnectorReplicas describes the running processes of connector name
// (tests use it to kill a connector mid-work and watch it restart).
func (rt *Runtime) ConnectorReplicas(name string) []ReplicaInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []ReplicaInfo
	for _, r := range rt.connectors {
		if info := r.info(); strings.TrimSuffix(info.Instance, "-1") == name {
			out = append(out, info)
		}
	}
	return out
}
