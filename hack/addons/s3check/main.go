// s3check: a tiny S3 client (standard library only, AWS Signature V4, path-style requests, like
// boto3 with addressing_style=path) shipped in the SeaweedFS image of the real node. It creates
// the buckets at `node.sh up` (a Job) and checks put/get from pods (hack/kubelet/smoke.sh).
//
//	s3check mb BUCKET...            create buckets (an existing bucket is fine)
//	s3check ls                      list buckets, one per line
//	s3check put BUCKET/KEY [TEXT]   put an object (TEXT or stdin)
//	s3check get BUCKET/KEY          print an object
//	s3check rm BUCKET/KEY           delete an object
//
// Environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (default
// http://s3.kubeloop-system.svc.cluster.local:8333), AWS_REGION (default us-east-1),
// S3CHECK_WAIT (seconds to retry connection errors and 5xx, default 0).
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// escapePath URI-encodes each path segment as SigV4 requires (unreserved characters kept).
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
	}
	return strings.Join(segs, "/")
}

type client struct {
	endpoint *url.URL
	key      string
	secret   string
	region   string
	http     *http.Client
}

func (c *client) do(method, path string, body []byte) (int, []byte, error) {
	if body == nil {
		body = []byte{}
	}
	now := time.Now().UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	payloadHash := sha256Hex(body)
	canonPath := escapePath(path)
	u := *c.endpoint
	u.Path = path
	u.RawPath = canonPath
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	headers := map[string]string{
		"host":                 u.Host,
		"x-amz-content-sha256": payloadHash,
		"x-amz-date":           amzDate,
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		canonHeaders.WriteString(k + ":" + headers[k] + "\n")
	}
	signed := strings.Join(names, ";")
	canonReq := strings.Join([]string{method, canonPath, "", canonHeaders.String(), signed, payloadHash}, "\n")
	scope := day + "/" + c.region + "/s3/aws4_request"
	toSign := strings.Join([]string{"AWS4-HMAC-SHA256", amzDate, scope, sha256Hex([]byte(canonReq))}, "\n")
	k := hmacSHA256([]byte("AWS4"+c.secret), day)
	k = hmacSHA256(k, c.region)
	k = hmacSHA256(k, "s3")
	k = hmacSHA256(k, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(k, toSign))
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", c.key, scope, signed, sig))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// call retries connection errors and 5xx for S3CHECK_WAIT seconds.
func (c *client) call(method, path string, body []byte) (int, []byte, error) {
	wait, _ := strconv.Atoi(os.Getenv("S3CHECK_WAIT"))
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		code, out, err := c.do(method, path, body)
		if (err == nil && code < 500) || time.Now().After(deadline) {
			return code, out, err
		}
		time.Sleep(time.Second)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "s3check: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: s3check mb BUCKET... | ls | put BUCKET/KEY [TEXT] | get BUCKET/KEY | rm BUCKET/KEY")
	}
	ep := os.Getenv("AWS_ENDPOINT_URL")
	if ep == "" {
		ep = "http://s3.kubeloop-system.svc.cluster.local:8333"
	}
	u, err := url.Parse(ep)
	if err != nil {
		fail("bad AWS_ENDPOINT_URL: %v", err)
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	c := &client{endpoint: u, key: os.Getenv("AWS_ACCESS_KEY_ID"), secret: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		region: region, http: &http.Client{Timeout: 30 * time.Second}}
	if c.key == "" || c.secret == "" {
		fail("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "mb":
		for _, b := range args {
			code, out, err := c.call("PUT", "/"+b, nil)
			switch {
			case err != nil:
				fail("create bucket %s: %v", b, err)
			// A single identity owns everything here: either 409 code means the bucket is there.
			case code == 200 || code == 409 && (bytes.Contains(out, []byte("BucketAlreadyOwnedByYou")) || bytes.Contains(out, []byte("BucketAlreadyExists"))):
				fmt.Printf("bucket %s ready\n", b)
			default:
				fail("create bucket %s: HTTP %d: %s", b, code, out)
			}
		}
	case "ls":
		code, out, err := c.call("GET", "/", nil)
		if err != nil || code != 200 {
			fail("list buckets: HTTP %d %v: %s", code, err, out)
		}
		var r struct {
			Buckets []struct {
				Name string `xml:"Name"`
			} `xml:"Buckets>Bucket"`
		}
		if err := xml.Unmarshal(out, &r); err != nil {
			fail("list buckets: %v", err)
		}
		for _, b := range r.Buckets {
			fmt.Println(b.Name)
		}
	case "put":
		if len(args) < 1 {
			fail("put BUCKET/KEY [TEXT]")
		}
		var body []byte
		if len(args) > 1 {
			body = []byte(strings.Join(args[1:], " "))
		} else if body, err = io.ReadAll(os.Stdin); err != nil {
			fail("read stdin: %v", err)
		}
		code, out, err := c.call("PUT", "/"+args[0], body)
		if err != nil || code != 200 {
			fail("put %s: HTTP %d %v: %s", args[0], code, err, out)
		}
		fmt.Printf("put %s (%d bytes)\n", args[0], len(body))
	case "get", "rm":
		if len(args) != 1 {
			fail("%s BUCKET/KEY", os.Args[1])
		}
		method, want := "GET", 200
		if os.Args[1] == "rm" {
			method, want = "DELETE", 204
		}
		code, out, err := c.call(method, "/"+args[0], nil)
		if err != nil || code != want {
			fail("%s %s: HTTP %d %v: %s", os.Args[1], args[0], code, err, out)
		}
		os.Stdout.Write(out)
	default:
		fail("unknown command %q", os.Args[1])
	}
}
