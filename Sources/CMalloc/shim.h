// glibc's malloc tuning (mallopt and its parameters), which the Glibc module does not export to Swift.
#include <malloc.h>
