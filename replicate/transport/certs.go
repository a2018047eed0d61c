package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of a certificate directory (see WriteCA and WriteNode).
const (
	// CADir is the subdirectory of a certificate directory that holds the
	// CA: CAKeyFile signs node certificates and never leaves it.
	CADir = "ca"
	// CACertFile is the CA certificate, in CADir and in every node's
	// directory.
	CACertFile = "ca.crt"
	// CAKeyFile is the CA's private key, in CADir only.
	CAKeyFile = "ca.key"
	// NodeCertFile and NodeKeyFile are a node's certificate and key, in its
	// directory.
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// MaxNodeNameLen is the longest node name: it names a directory and a
// replication id (at most 255 bytes) and is the certificate's common name
// (at most 64 characters, RFC 5280 ub-common-name).
const MaxNodeNameLen = 64

// CA is a certificate authority that signs node certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA returns a new self-signed CA called name, valid for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// CertPEM returns the CA certificate, PEM-encoded.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA's private key, PEM-encoded (PKCS #8).
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CheckNodeName returns an error unless name can name a node: 1 to
// MaxNodeNameLen letters, digits, '.', '-' or '_', not starting with '.',
// and not CADir. The name is the node's certificate common name, the
// replication id its leader knows it by, and its directory's name.
func CheckNodeName(name string) error {
	if name == "" || len(name) > MaxNodeNameLen {
		return fmt.Errorf("transport: node name %q must be 1 to %d characters", name, MaxNodeNameLen)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("transport: node name %q may hold only letters, digits, '.', '-' and '_'", name)
		}
	}
	if name[0] == '.' || name == CADir {
		return fmt.Errorf("transport: node name %q is reserved; pick another", name)
	}
	return nil
}

// Issue signs a certificate for the node called name (its common name, the
// identity a leader knows it by) that is valid for hosts (DNS names or IP
// addresses) from notBefore to notAfter, for both server and client
// authentication. It returns the certificate and key, PEM-encoded.
func (ca *CA) Issue(name string, hosts []string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Identity returns a node identity for name signed by ca, valid for hosts for
// a year.
func (ca *CA) Identity(name string, hosts ...string) (*Identity, error) {
	c, k, err := ca.Issue(name, hosts, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	if err != nil {
		return nil, err
	}
	return NewIdentity(c, k, ca.CertPEM())
}

// WriteCA makes a new CA called "logkv CA" and writes it to dir/CADir:
// CACertFile (mode 0644) and CAKeyFile (0600), in a directory of mode 0700.
// Only the machine that issues certificates needs that directory; nodes get
// their own (WriteNode). It refuses to replace an existing CA key, since
// every certificate it signed would stop being trusted.
func WriteCA(dir string) (*CA, error) {
	caDir := filepath.Join(dir, CADir)
	keyPath := filepath.Join(caDir, CAKeyFile)
	if _, err := os.Lstat(keyPath); err == nil {
		return nil, fmt.Errorf("transport: %s exists; refusing to replace a CA (issue node certificates from it, or remove %s to start over)", keyPath, dir)
	}
	ca, err := NewCA("logkv CA")
	if err != nil {
		return nil, err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := privateDir(caDir); err != nil {
		return nil, err
	}
	// The key first: a CA certificate without its key is useless, and a
	// key without its certificate is found by the check above.
	if err := writeFileAtomic(keyPath, key, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(caDir, CACertFile), ca.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadCA reads the CA that WriteCA wrote to dir.
func LoadCA(dir string) (*CA, error) {
	caDir := filepath.Join(dir, CADir)
	certPEM, err := os.ReadFile(filepath.Join(caDir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("transport: CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(caDir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("transport: CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("transport: CA in %s: %w", caDir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("transport: CA in %s: %w", caDir, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("transport: %s does not hold a CA certificate and its signing key", caDir)
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// WriteNode issues a certificate for the node called name, valid for hosts
// for a year, and writes what that node needs to dir/name: CACertFile and
// NodeCertFile (mode 0644) and NodeKeyFile (0600), in a directory of mode
// 0700. An existing certificate is replaced (a renewal; a running node picks
// it up, see Reloader). Each file is replaced atomically, and the key is
// 0600 whatever mode an earlier file had.
func (ca *CA) WriteNode(dir, name string, hosts []string) error {
	if err := CheckNodeName(name); err != nil {
		return err
	}
	c, k, err := ca.Issue(name, hosts, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	if err != nil {
		return err
	}
	nodeDir := filepath.Join(dir, name)
	if err := privateDir(nodeDir); err != nil {
		return err
	}
	// CA, key, then certificate: a node reloading midway finds a key that
	// does not match its certificate and keeps what it has until the
	// certificate arrives.
	if err := writeFileAtomic(filepath.Join(nodeDir, CACertFile), ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(nodeDir, NodeKeyFile), k, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(nodeDir, NodeCertFile), c, 0o644)
}

// GenerateCerts writes a new CA to dir (WriteCA) and a certificate for each
// node (WriteNode), each valid for hosts.
func GenerateCerts(dir string, hosts []string, nodes ...string) error {
	ca, err := WriteCA(dir)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := ca.WriteNode(dir, n, hosts); err != nil {
			return err
		}
	}
	return nil
}

// privateDir makes dir (and its parents) and makes it mode 0700, even if it
// existed: it holds a private key.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// writeFileAtomic replaces path with data, mode perm: a reader sees the old
// file or the new one, never part of either, and the new file has perm
// whatever the old one had (os.WriteFile keeps an existing file's mode, so a
// key once written 0644 would stay readable by everyone).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600; Chmod sets perm exactly, whatever
	// the umask.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}

// Identity is what a node presents and trusts: its certificate and key, and
// the CA pool that peers' certificates must chain to. It is an
// IdentitySource that never changes.
type Identity struct {
	Cert tls.Certificate
	CAs  *x509.CertPool
}

// Current returns id itself.
func (id *Identity) Current() *Identity { return id }

// Name is the node name the certificate carries (its common name): the id a
// leader knows this node by.
func (id *Identity) Name() string {
	if l := id.leaf(); l != nil {
		return l.Subject.CommonName
	}
	return ""
}

// leaf returns the node's certificate, parsed (tls.X509KeyPair fills
// Cert.Leaf, unless GODEBUG x509keypairleaf=0 says not to).
func (id *Identity) leaf() *x509.Certificate {
	if id.Cert.Leaf != nil {
		return id.Cert.Leaf
	}
	if len(id.Cert.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(id.Cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// notAfter is when the node's certificate expires (zero if unknown).
func (id *Identity) notAfter() time.Time {
	if l := id.leaf(); l != nil {
		return l.NotAfter
	}
	return time.Time{}
}

// NewIdentity builds an Identity from PEM data. caPEM may hold several CA
// certificates.
func NewIdentity(certPEM, keyPEM, caPEM []byte) (*Identity, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("transport: node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("transport: no CA certificate found in the CA PEM")
	}
	return &Identity{Cert: cert, CAs: pool}, nil
}

// LoadIdentity reads an Identity from PEM files.
func LoadIdentity(certFile, keyFile, caFile string) (*Identity, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	return NewIdentity(c, k, ca)
}
