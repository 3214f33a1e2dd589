package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Namespaces of the elements the guard looks for.
const (
	assertionNS = "urn:oasis:names:tc:SAML:2.0:assertion"
	protocolNS  = "urn:oasis:names:tc:SAML:2.0:protocol"
	dsigNS      = "http://www.w3.org/2000/09/xmldsig#"
)

// errDTD is a document with a DTD or another directive. No SAML message
// or metadata needs one, and it is where entity tricks (XXE, billion
// laughs) live, so it is refused before any other parser sees the bytes.
var errDTD = errors.New("the XML has a DTD or entity declaration, which SAML never needs")

// xmlShape is what the guard learned of a document on its way through.
type xmlShape struct {
	assertions          int // saml:Assertion elements, at any depth
	encryptedAssertions int // saml:EncryptedAssertion elements, at any depth
	// signatures counts ds:Signature elements that are children of the
	// root samlp:Response or of a saml:Assertion: the only places a
	// signature can make a response trusted.
	signatures int
}

// guardXML reads raw once with the standard library's strict tokenizer,
// which resolves no entities and fetches nothing, and refuses what a SAML
// document never holds: a DTD or any other <!...> directive, processing
// instructions other than the XML declaration, undeclared entities, a
// charset other than UTF-8, and anything that is not well-formed. It
// counts the assertions at every depth, so a caller can refuse a second
// one wherever it is hidden (signature wrapping puts the attacker's
// assertion beside, above or inside the signed one).
func guardXML(raw []byte) (xmlShape, error) {
	var shape xmlShape
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	roots := 0
	var open []xml.Name // the elements enclosing the current token
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return shape, fmt.Errorf("the XML is not well-formed: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return shape, errDTD
		case xml.ProcInst:
			if t.Target != "xml" {
				return shape, fmt.Errorf("the XML has a processing instruction %q", t.Target)
			}
		case xml.StartElement:
			if len(open) == 0 {
				roots++
			}
			if t.Name == (xml.Name{Space: dsigNS, Local: "Signature"}) && len(open) > 0 {
				parent := open[len(open)-1]
				if parent == (xml.Name{Space: assertionNS, Local: "Assertion"}) ||
					(len(open) == 1 && parent == xml.Name{Space: protocolNS, Local: "Response"}) {
					shape.signatures++
				}
			}
			open = append(open, t.Name)
			if t.Name.Space == assertionNS {
				switch t.Name.Local {
				case "Assertion":
					shape.assertions++
				case "EncryptedAssertion":
					shape.encryptedAssertions++
				}
			}
		case xml.EndElement:
			open = open[:len(open)-1]
		}
	}
	if roots != 1 {
		return shape, fmt.Errorf("the XML has %d root elements, not one", roots)
	}
	return shape, nil
}
