package kubecheck

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Pod is a pod of the model the NetworkPolicies are evaluated on: where it
// runs and its labels. Namespaces carry their kubernetes.io/metadata.name
// label, as the API server sets it.
type Pod struct {
	Name      string
	Namespace string
	Labels    map[string]string
	// External is a client outside the cluster (the LoadBalancer's): no
	// pod or namespace selector matches it.
	External bool
}

// Flow is a TCP connection from one pod to another's port.
type Flow struct {
	From, To Pod
	Port     int32
}

func (f Flow) String() string {
	return fmt.Sprintf("%s → %s:%d", f.From.Name, f.To.Name, f.Port)
}

// allows says whether policies let the flow in, as Kubernetes decides for
// ingress: a pod that no Ingress policy selects takes every connection;
// one that some do takes a connection that one of their rules allows. Only
// what the folder's policies use is modelled (pod and namespace selectors,
// TCP ports by number; an ipBlock or a named port is refused).
func allows(policies []*networkingv1.NetworkPolicy, f Flow) (bool, error) {
	isolated := false
	for _, p := range policies {
		if p.Namespace != f.To.Namespace || !hasIngress(p) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			return false, fmt.Errorf("NetworkPolicy %s: %w", p.Name, err)
		}
		if !sel.Matches(labels.Set(f.To.Labels)) {
			continue
		}
		isolated = true
		for _, rule := range p.Spec.Ingress {
			from, err := peersMatch(p, rule.From, f.From)
			if err != nil {
				return false, err
			}
			port, err := portsMatch(p, rule.Ports, f.Port)
			if err != nil {
				return false, err
			}
			if from && port {
				return true, nil
			}
		}
	}
	return !isolated, nil
}

func hasIngress(p *networkingv1.NetworkPolicy) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return true // Ingress is implied
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

// peersMatch: no peer allows every source; a peer with a namespace selector
// matches pods of the namespaces it selects (and its pod selector, when
// set, narrows them); a peer with a pod selector only, pods of the
// policy's namespace.
func peersMatch(p *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, from Pod) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			return false, fmt.Errorf("NetworkPolicy %s: ipBlock is not modelled here", p.Name)
		}
		if from.External {
			continue
		}
		if peer.NamespaceSelector != nil {
			ns, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
			if err != nil {
				return false, fmt.Errorf("NetworkPolicy %s: %w", p.Name, err)
			}
			if !ns.Matches(labels.Set{"kubernetes.io/metadata.name": from.Namespace}) {
				continue
			}
		} else if from.Namespace != p.Namespace {
			continue
		}
		if peer.PodSelector != nil {
			pods, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				return false, fmt.Errorf("NetworkPolicy %s: %w", p.Name, err)
			}
			if !pods.Matches(labels.Set(from.Labels)) {
				continue
			}
		}
		return true, nil
	}
	return false, nil
}

// portsMatch: no port allows every port; otherwise one TCP port must be it.
func portsMatch(p *networkingv1.NetworkPolicy, ports []networkingv1.NetworkPolicyPort, port int32) (bool, error) {
	if len(ports) == 0 {
		return true, nil
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != "TCP" {
			continue
		}
		if pp.Port == nil {
			return true, nil
		}
		if pp.Port.StrVal != "" || pp.EndPort != nil {
			return false, fmt.Errorf("NetworkPolicy %s: named ports and ranges are not modelled here", p.Name)
		}
		if pp.Port.IntVal == port {
			return true, nil
		}
	}
	return false, nil
}

// CheckFlows reports every flow of allowed that the policies refuse and every
// flow of denied that they let in.
func CheckFlows(policies []*networkingv1.NetworkPolicy, allowed, denied []Flow) []error {
	var errs []error
	for _, f := range allowed {
		if ok, err := allows(policies, f); err != nil {
			errs = append(errs, err)
		} else if !ok {
			errs = append(errs, fmt.Errorf("NetworkPolicies refuse %s, which must work", f))
		}
	}
	for _, f := range denied {
		if ok, err := allows(policies, f); err != nil {
			errs = append(errs, err)
		} else if ok {
			errs = append(errs, fmt.Errorf("NetworkPolicies let in %s, which they must refuse", f))
		}
	}
	return errs
}
