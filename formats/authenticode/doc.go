// Package authenticode signs PE/COFF images (UEFI applications, shim, GRUB,
// Linux kernels with an EFI stub) with Authenticode signatures, the kind
// that UEFI Secure Boot firmware and shim verify.
//
// Parse reads an image's headers and section table from an io.ReaderAt,
// checking every range against the file size; Digest computes the SHA-256
// Authenticode image digest; Sign builds a PKCS#7 SignedData over it with
// a crypto.Signer (RSA PKCS#1 v1.5 or ECDSA P-256, SHA-256) and writes the
// signed image: the original bytes with the CheckSum and the certificate
// table entry rewritten, zero padding to a multiple of 8 bytes, and the
// WIN_CERTIFICATE table at the end. Images are streamed, never held whole in
// memory. The package knows nothing of keys' whereabouts: the signer's Sign
// is called once per signature.
//
// The digest follows Microsoft's "Windows Authenticode Portable Executable
// Signature Format": the headers up to SizeOfHeaders without the CheckSum
// and the certificate table entry, each section's raw data in file order,
// then the bytes from the end of the sections' total size to the
// certificate table (or the end of the file). Like sbsign, Sign pads the
// image to 8 bytes before the table and hashes the padding, so an image
// whose length is not a multiple of 8 gets the digest of its padded form.
//
// ECDSA P-256 signatures are well formed (sbverify, osslsigncode and pesign
// accept them) but UEFI firmware and shim may not take them: Debian 12's
// OVMF and AAVMF (edk2) refuse an ECDSA-signed GRUB with Access Denied even
// with the signer's own certificate in db, and its shim refuses one
// (Security Violation) where the RSA-signed GRUB boots. Sign with RSA for
// Secure Boot.
package authenticode
