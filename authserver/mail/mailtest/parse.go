package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
)

// Parsed is a message as a mail client shows it.
type Parsed struct {
	Header      mail.Header
	From, To    string
	Subject     string
	ContentType string // of the whole message
	Text, HTML  string // decoded parts
}

// Parse reads an RFC 5322 message with a text part and, optionally, an
// HTML alternative.
func Parse(raw []byte) (*Parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(m.Header.Get("Subject"))
	p := &Parsed{Header: m.Header, From: m.Header.Get("From"), To: m.Header.Get("To"), Subject: subject}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("content type: %w", err)
	}
	p.ContentType = mt
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decodePart(m.Body, m.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return nil, err
		}
		p.Text = body
		return p, nil
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read part: %w", err)
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		// multipart.Reader already undoes quoted-printable.
		body, err := decodePart(part, part.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return nil, err
		}
		switch pt {
		case "text/plain":
			p.Text = body
		case "text/html":
			p.HTML = body
		}
	}
	return p, nil
}

func decodePart(r io.Reader, cte string) (string, error) {
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// Links are the URLs in a text.
func Links(text string) []string {
	return linkRE.FindAllString(text, -1)
}

// Token reads the token query parameter of the first link in the
// message's text part, as a user following the link would deliver it.
func (p *Parsed) Token() (string, error) {
	for _, l := range Links(p.Text) {
		u, err := url.Parse(l)
		if err != nil {
			continue
		}
		if t := u.Query().Get("token"); t != "" {
			return t, nil
		}
	}
	return "", errors.New("no link with a token in the message")
}
