package kube

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// TransformSecret trims a Secret before the informer cache keeps it, so a
// replica holds each store record once and small. Every Secret loses its
// managedFields, which nothing here reads (a few hundred bytes each). A
// store Secret is cut down to what the store's index reads from it: its
// name, namespace, resourceVersion, the labels and annotations fromSecret
// and ours look at, and its data; the index shares that data rather than
// copying it. Other Secrets (the operator's records) keep their owner
// references and UID, which the trust checks need.
//
// Nothing reads store Secrets from the cache but the store's own event
// handler: writes and live reads go to the API server.
func TransformSecret(obj any) (any, error) {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	sec.ManagedFields = nil
	if sec.Labels[tav1.LabelComponent] != tav1.ComponentStore {
		return sec, nil
	}
	keep := func(m map[string]string, keys ...string) map[string]string {
		out := make(map[string]string, len(keys))
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: sec.Name, Namespace: sec.Namespace, ResourceVersion: sec.ResourceVersion,
			Labels:      keep(sec.Labels, tav1.LabelComponent, labelKind, labelRevoked),
			Annotations: keep(sec.Annotations, annotationID, annotationUser, annotationExpiry),
		},
		Data: map[string][]byte{dataKey: sec.Data[dataKey]},
	}, nil
}
