/*
 * sanitized: MEMRING_SANITIZED is 1 in a build under AddressSanitizer or
 * ThreadSanitizer (gcc's __SANITIZE_*__ or clang's __has_feature). Such a
 * build's malloc is the sanitizer's, not glibc's, and the sanitizer
 * reports crashes itself: what touches glibc's heap or handles fatal
 * signals stands aside there.
 */
#ifndef MEMRING_SANITIZED_H
#define MEMRING_SANITIZED_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMRING_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MEMRING_SANITIZED 1
#endif
#endif

#ifndef MEMRING_SANITIZED
#define MEMRING_SANITIZED 0
#endif

#endif
