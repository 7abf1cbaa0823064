//go:build !linux

package faaslocal

// reserveServices reserves nothing: a port shared by the replicas needs
// Linux's SO_REUSEPORT, so elsewhere the runtime runs as with
// Config.GatewayOnly and every call between functions goes through the gateway.
func reserveServices(map[string]bool) (*services, error) { return nil, nil }

// Close releases nothing.
func (s *services) Close() error { return nil }
