/*
 * yubihsmsim: a PKCS#11 module for load tests that forwards every call to
 * another module (SoftHSM2) but meets the limits a YubiHSM 2 imposes:
 *
 *   - each private-key operation (C_Sign, C_SignFinal, C_Decrypt,
 *     C_DecryptFinal) takes at least a configured time that depends on the
 *     key (RSA size or curve); the real module's own time counts towards it;
 *   - the device does one operation at a time: those operations, key
 *     generation, wrapping and unwrapping hold one process-wide lock,
 *     delay included, so a long operation blocks every other session;
 *   - at most 16 sessions are open at once (C_OpenSession then returns
 *     CKR_SESSION_COUNT) and C_GetTokenInfo reports that limit.
 *
 * Configuration, read by C_Initialize from the environment:
 *   SIGNET_YHSIM_MODULE        the real module (required)
 *   SIGNET_YHSIM_SCALE         factor applied to every delay (default 1)
 *   SIGNET_YHSIM_MAX_SESSIONS  session limit (default 16)
 *   SIGNET_YHSIM_<KEY>_MS      delay in milliseconds for KEY in RSA2048,
 *                              RSA3072, RSA4096, P256, P384, P521, ED25519,
 *                              OTHER. Defaults: Yubico's published figures
 *                              RSA4096 852, RSA2048 139, P256 73; 0 for the
 *                              rest (set them when you need them).
 *
 * Built by the Go package github.com/signet-project/signet/yubihsm-sim
 * and by scripts/bench-scale.sh with gcc, against the PKCS#11 headers
 * shipped by github.com/miekg/pkcs11.
 */
#define _GNU_SOURCE
#define CK_PTR *
#define NULL_PTR 0
#define CK_DEFINE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (*name)
#include "pkcs11.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

enum { K_RSA2048, K_RSA3072, K_RSA4096, K_P256, K_P384, K_P521, K_ED25519, K_OTHER, K_N };
static const char *const key_names[K_N] = {"RSA2048", "RSA3072", "RSA4096", "P256", "P384", "P521", "ED25519", "OTHER"};
static const long default_ms[K_N] = {139, 0, 852, 73, 0, 0, 0, 0};

#define MAX_TRACKED 256

struct sess {
	int used;
	CK_SESSION_HANDLE h;
	CK_SLOT_ID slot;
	long long sign_ns;    /* delay of the C_SignInit in progress */
	long long decrypt_ns; /* delay of the C_DecryptInit in progress */
};

static void *real_lib;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST ours;
static int ours_ready;

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t device_mu = PTHREAD_MUTEX_INITIALIZER; /* the single rendezvous point */
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;

static long long delay_ns[K_N];
static unsigned long max_sessions = 16;
static struct sess table[MAX_TRACKED];
static unsigned long open_count;

static void complain(const char *msg, const char *detail)
{
	fprintf(stderr, "yubihsmsim: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
}

/* load_real dlopens the module named by SIGNET_YHSIM_MODULE once. */
static CK_RV load_real(void)
{
	CK_RV rv = CKR_OK;
	pthread_mutex_lock(&load_mu);
	if (real == NULL) {
		const char *path = getenv("SIGNET_YHSIM_MODULE");
		CK_C_GetFunctionList get;
		if (path == NULL || *path == 0) {
			complain("SIGNET_YHSIM_MODULE names no module to forward to", NULL);
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		real_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (real_lib == NULL) {
			complain("cannot load the real module", dlerror());
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		get = (CK_C_GetFunctionList)dlsym(real_lib, "C_GetFunctionList");
		if (get == NULL) {
			complain("the real module has no C_GetFunctionList", path);
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		rv = get(&real);
		if (rv != CKR_OK)
			real = NULL;
	}
out:
	pthread_mutex_unlock(&load_mu);
	return rv;
}

static void read_config(void)
{
	double scale = 1;
	const char *s = getenv("SIGNET_YHSIM_SCALE");
	char name[64];
	int i;
	if (s != NULL && *s != 0) {
		char *end;
		double v = strtod(s, &end);
		if (*end == 0 && v >= 0)
			scale = v;
		else
			complain("SIGNET_YHSIM_SCALE is not a non-negative number; using 1", s);
	}
	for (i = 0; i < K_N; i++) {
		double ms = default_ms[i];
		snprintf(name, sizeof name, "SIGNET_YHSIM_%s_MS", key_names[i]);
		s = getenv(name);
		if (s != NULL && *s != 0) {
			char *end;
			double v = strtod(s, &end);
			if (*end == 0 && v >= 0)
				ms = v;
			else
				complain("ignoring a delay that is not a non-negative number", name);
		}
		delay_ns[i] = (long long)(ms * scale * 1e6);
	}
	s = getenv("SIGNET_YHSIM_MAX_SESSIONS");
	if (s != NULL && *s != 0) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);
		if (*end == 0 && v > 0)
			max_sessions = v;
		else
			complain("SIGNET_YHSIM_MAX_SESSIONS is not a positive integer; using 16", s);
	}
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* sleep_until sleeps until the monotonic clock reads deadline (ns). */
static void sleep_until(long long deadline)
{
	struct timespec ts;
	ts.tv_sec = deadline / 1000000000LL;
	ts.tv_nsec = deadline % 1000000000LL;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static struct sess *find(CK_SESSION_HANDLE h)
{
	int i;
	for (i = 0; i < MAX_TRACKED; i++)
		if (table[i].used && table[i].h == h)
			return &table[i];
	return NULL;
}

/* key_class returns which delay applies to the private key hKey. */
static int key_class(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE hKey)
{
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof kt};
	if (real->C_GetAttributeValue(s, hKey, &a, 1) != CKR_OK)
		return K_OTHER;
	if (kt == CKK_RSA) {
		CK_ATTRIBUTE m = {CKA_MODULUS, NULL, 0};
		CK_ULONG bits = 0;
		if (real->C_GetAttributeValue(s, hKey, &m, 1) == CKR_OK && m.ulValueLen != (CK_ULONG)-1)
			bits = m.ulValueLen * 8;
		if (bits == 2048)
			return K_RSA2048;
		if (bits == 3072)
			return K_RSA3072;
		if (bits == 4096)
			return K_RSA4096;
		return K_OTHER;
	}
	if (kt == CKK_EC) {
		/* DER OIDs of the curves */
		static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
		static const unsigned char p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
		static const unsigned char p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
		unsigned char buf[64];
		CK_ATTRIBUTE p = {CKA_EC_PARAMS, buf, sizeof buf};
		if (real->C_GetAttributeValue(s, hKey, &p, 1) != CKR_OK)
			return K_OTHER;
		if (p.ulValueLen == sizeof p256 && memcmp(buf, p256, sizeof p256) == 0)
			return K_P256;
		if (p.ulValueLen == sizeof p384 && memcmp(buf, p384, sizeof p384) == 0)
			return K_P384;
		if (p.ulValueLen == sizeof p521 && memcmp(buf, p521, sizeof p521) == 0)
			return K_P521;
		return K_OTHER;
	}
	if (kt == 0x40) /* CKK_EC_EDWARDS (PKCS#11 3.0) */
		return K_ED25519;
	return K_OTHER;
}

static CK_RV w_Initialize(CK_VOID_PTR args)
{
	CK_RV rv = load_real();
	if (rv != CKR_OK)
		return rv;
	rv = real->C_Initialize(args);
	/* Another user of the same real module in this process may have
	 * initialised it already; our own state starts afresh either way. */
	if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		pthread_mutex_lock(&table_mu);
		read_config();
		memset(table, 0, sizeof table);
		open_count = 0;
		pthread_mutex_unlock(&table_mu);
	}
	return rv;
}

static CK_RV w_Finalize(CK_VOID_PTR reserved)
{
	CK_RV rv = real->C_Finalize(reserved);
	if (rv == CKR_OK) {
		pthread_mutex_lock(&table_mu);
		memset(table, 0, sizeof table);
		open_count = 0;
		pthread_mutex_unlock(&table_mu);
	}
	return rv;
}

static CK_RV w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_RV rv = real->C_GetTokenInfo(slot, info);
	if (rv == CKR_OK && info != NULL) {
		pthread_mutex_lock(&table_mu);
		info->ulMaxSessionCount = max_sessions;
		info->ulMaxRwSessionCount = max_sessions;
		info->ulSessionCount = open_count;
		info->ulRwSessionCount = open_count;
		pthread_mutex_unlock(&table_mu);
	}
	return rv;
}

static CK_RV w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR ph)
{
	CK_RV rv;
	int i;
	pthread_mutex_lock(&table_mu);
	if (open_count >= max_sessions || open_count >= MAX_TRACKED) {
		pthread_mutex_unlock(&table_mu);
		return CKR_SESSION_COUNT;
	}
	rv = real->C_OpenSession(slot, flags, app, notify, ph);
	if (rv == CKR_OK) {
		for (i = 0; i < MAX_TRACKED; i++)
			if (!table[i].used)
				break;
		table[i].used = 1;
		table[i].h = *ph;
		table[i].slot = slot;
		table[i].sign_ns = table[i].decrypt_ns = 0;
		open_count++;
	}
	pthread_mutex_unlock(&table_mu);
	return rv;
}

static CK_RV w_CloseSession(CK_SESSION_HANDLE h)
{
	CK_RV rv = real->C_CloseSession(h);
	if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID) {
		struct sess *e;
		pthread_mutex_lock(&table_mu);
		e = find(h);
		if (e != NULL) {
			e->used = 0;
			open_count--;
		}
		pthread_mutex_unlock(&table_mu);
	}
	return rv;
}

static CK_RV w_CloseAllSessions(CK_SLOT_ID slot)
{
	CK_RV rv = real->C_CloseAllSessions(slot);
	if (rv == CKR_OK) {
		int i;
		pthread_mutex_lock(&table_mu);
		for (i = 0; i < MAX_TRACKED; i++)
			if (table[i].used && table[i].slot == slot) {
				table[i].used = 0;
				open_count--;
			}
		pthread_mutex_unlock(&table_mu);
	}
	return rv;
}

static void set_delay(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key, int decrypt)
{
	long long d = delay_ns[key_class(h, key)];
	struct sess *e;
	pthread_mutex_lock(&table_mu);
	e = find(h);
	if (e != NULL) {
		if (decrypt)
			e->decrypt_ns = d;
		else
			e->sign_ns = d;
	}
	pthread_mutex_unlock(&table_mu);
}

static long long get_delay(CK_SESSION_HANDLE h, int decrypt)
{
	long long d = 0;
	struct sess *e;
	pthread_mutex_lock(&table_mu);
	e = find(h);
	if (e != NULL)
		d = decrypt ? e->decrypt_ns : e->sign_ns;
	pthread_mutex_unlock(&table_mu);
	return d;
}

static CK_RV w_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	CK_RV rv = real->C_SignInit(h, mech, key);
	if (rv == CKR_OK)
		set_delay(h, key, 0);
	return rv;
}

static CK_RV w_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	CK_RV rv = real->C_DecryptInit(h, mech, key);
	if (rv == CKR_OK)
		set_delay(h, key, 1);
	return rv;
}

/*
 * A call with a NULL output buffer only asks for the length (the YubiHSM
 * module answers it without the device); a call that ends with
 * CKR_BUFFER_TOO_SMALL leaves the operation active. Every other call
 * is the operation itself: it holds the device, and the device stays
 * held until the configured time has passed since the call began.
 */
#define DEVICE_OP(call, out, decrypt)                                        \
	do {                                                                     \
		long long start, d;                                                  \
		CK_RV rv;                                                            \
		if ((out) == NULL)                                                   \
			return call;                                                     \
		d = get_delay(h, decrypt);                                           \
		pthread_mutex_lock(&device_mu);                                      \
		start = now_ns();                                                    \
		rv = call;                                                           \
		if (rv != CKR_BUFFER_TOO_SMALL && d > 0)                             \
			sleep_until(start + d);                                          \
		pthread_mutex_unlock(&device_mu);                                    \
		return rv;                                                           \
	} while (0)

static CK_RV w_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR sig, CK_ULONG_PTR sigLen)
{
	DEVICE_OP(real->C_Sign(h, data, n, sig, sigLen), sig, 0);
}

static CK_RV w_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sigLen)
{
	DEVICE_OP(real->C_SignFinal(h, sig, sigLen), sig, 0);
}

static CK_RV w_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	DEVICE_OP(real->C_Decrypt(h, in, n, out, outLen), out, 1);
}

static CK_RV w_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	DEVICE_OP(real->C_DecryptFinal(h, out, outLen), out, 1);
}

/* Operations that occupy the device without a modelled delay. */
static CK_RV w_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pubT, CK_ULONG npub,
			       CK_ATTRIBUTE_PTR privT, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	CK_RV rv;
	pthread_mutex_lock(&device_mu);
	rv = real->C_GenerateKeyPair(h, m, pubT, npub, privT, npriv, pub, priv);
	pthread_mutex_unlock(&device_mu);
	return rv;
}

static CK_RV w_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k)
{
	CK_RV rv;
	pthread_mutex_lock(&device_mu);
	rv = real->C_GenerateKey(h, m, t, n, k);
	pthread_mutex_unlock(&device_mu);
	return rv;
}

static CK_RV w_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk, CK_OBJECT_HANDLE k,
		       CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	CK_RV rv;
	pthread_mutex_lock(&device_mu);
	rv = real->C_WrapKey(h, m, wk, k, out, outLen);
	pthread_mutex_unlock(&device_mu);
	return rv;
}

static CK_RV w_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk, CK_BYTE_PTR in, CK_ULONG n,
			 CK_ATTRIBUTE_PTR t, CK_ULONG nt, CK_OBJECT_HANDLE_PTR k)
{
	CK_RV rv;
	pthread_mutex_lock(&device_mu);
	rv = real->C_UnwrapKey(h, m, uk, in, n, t, nt, k);
	pthread_mutex_unlock(&device_mu);
	return rv;
}

static CK_RV w_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return w_GetFunctionList(list);
}

static CK_RV w_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv;
	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = load_real();
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&load_mu);
	if (!ours_ready) {
		ours = *real; /* every entry forwards unless replaced below */
		ours.C_GetFunctionList = w_GetFunctionList;
		ours.C_Initialize = w_Initialize;
		ours.C_Finalize = w_Finalize;
		ours.C_GetTokenInfo = w_GetTokenInfo;
		ours.C_OpenSession = w_OpenSession;
		ours.C_CloseSession = w_CloseSession;
		ours.C_CloseAllSessions = w_CloseAllSessions;
		ours.C_SignInit = w_SignInit;
		ours.C_Sign = w_Sign;
		ours.C_SignFinal = w_SignFinal;
		ours.C_DecryptInit = w_DecryptInit;
		ours.C_Decrypt = w_Decrypt;
		ours.C_DecryptFinal = w_DecryptFinal;
		ours.C_GenerateKeyPair = w_GenerateKeyPair;
		ours.C_GenerateKey = w_GenerateKey;
		ours.C_WrapKey = w_WrapKey;
		ours.C_UnwrapKey = w_UnwrapKey;
		ours_ready = 1;
	}
	pthread_mutex_unlock(&load_mu);
	*list = &ours;
	return CKR_OK;
}
