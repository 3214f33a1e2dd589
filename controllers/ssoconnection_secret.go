package controllers

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// writeClientSecretRecord creates or updates the connection's client-secret
// record. A write happens only when the value changed, so a resync writes
// nothing. Errors name the record, never the value.
func (r *SSOConnectionReconciler) writeClientSecretRecord(ctx context.Context, conn *tav1.SSOConnection, value []byte) error {
	name := trust.SSOClientSecretName(conn.UID)
	cur := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: r.SystemNamespace, Name: name}, cur)
	if apierrors.IsNotFound(err) {
		rec := trust.New(r.SystemNamespace, name, trust.ComponentSSOClientSecret, trust.OwnerOf(conn))
		rec.Data = map[string][]byte{trust.SSOClientSecretDataKey: value}
		if err := r.Create(ctx, rec); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create client-secret record %s of ssoconnection %s: %w", name, conn.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get client-secret record %s: %w", name, err)
	}
	if rec, perr := trust.ParseSSOClientSecret(cur, r.SystemNamespace); perr == nil && rec.Owner == trust.OwnerOf(conn) &&
		bytes.Equal(cur.Data[trust.SSOClientSecretDataKey], value) {
		return nil
	}
	want := trust.New(r.SystemNamespace, name, trust.ComponentSSOClientSecret, trust.OwnerOf(conn))
	cur.Labels, cur.Annotations = want.Labels, want.Annotations
	cur.Data = map[string][]byte{trust.SSOClientSecretDataKey: value}
	if err := r.Update(ctx, cur); err != nil {
		return fmt.Errorf("update client-secret record %s of ssoconnection %s: %w", name, conn.Name, err)
	}
	return nil
}

// removeClientSecretRecords deletes the connection's client-secret
// records: the reference is gone or points at nothing.
func (r *SSOConnectionReconciler) removeClientSecretRecords(ctx context.Context, conn *tav1.SSOConnection) error {
	recs, err := listOwnedRecords(ctx, r.Client, r.SystemNamespace, trust.ComponentSSOClientSecret, trust.OwnerOf(conn))
	if err != nil {
		return err
	}
	for i := range recs {
		if err := r.Delete(ctx, &recs[i], client.Preconditions{UID: &recs[i].UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete client-secret record of ssoconnection %s: %w", conn.Name, err)
		}
	}
	return nil
}

// reconcileDelete removes the connection's records, then lets it go.
func (r *SSOConnectionReconciler) reconcileDelete(ctx context.Context, conn *tav1.SSOConnection) error {
	if !controllerutil.ContainsFinalizer(conn, tav1.Finalizer) {
		return nil
	}
	if err := r.removeClientSecretRecords(ctx, conn); err != nil {
		return err
	}
	controllerutil.RemoveFinalizer(conn, tav1.Finalizer)
	if err := r.Update(ctx, conn); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of ssoconnection %s: %w", conn.Name, err)
	}
	return nil
}
