package store

import "context"

// Header is what a Record says about itself outside its Data: whose it is
// and whether it is revoked. A revocation check needs only this.
type Header struct {
	UserID  string
	Revoked bool
}

// HeaderReader is a Store that reads a record's Header without copying
// the record. Its answers are Get's: the same errors, the same fallbacks
// on a miss, and the same freshness, so a record revoked is seen revoked
// exactly when Get would see it so.
type HeaderReader interface {
	GetHeader(ctx context.Context, kind, id string) (Header, error)
}

// GetHeader reads a record's Header: through HeaderReader when st has it,
// else from Get.
func GetHeader(ctx context.Context, st Store, kind, id string) (Header, error) {
	if hr, ok := st.(HeaderReader); ok {
		return hr.GetHeader(ctx, kind, id)
	}
	r, err := st.Get(ctx, kind, id)
	if err != nil {
		return Header{}, err
	}
	return Header{UserID: r.UserID, Revoked: r.Revoked}, nil
}
