#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rpctls/ktls.h"
#include "rpctls/aead.h"
#include "rpctls/mbuf.h"
#define CH (256*1024)
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int nsup(enum ktls_cipher c){(void)c;return 1;}
static struct ktls_aead_key{int x;} kk;
static int nkey(enum ktls_cipher c,const uint8_t*k,struct ktls_aead_key**o){(void)c;(void)k;*o=&kk;return 0;}
static void nfree(struct ktls_aead_key*k){(void)k;}
static int nseal(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad, size_t aadlen,
                const struct iovec *src, int nsrc, const struct iovec *dst, int ndst, uint8_t tag[KTLS_AEAD_TAG_LEN]){
 (void)k;(void)nonce;(void)aad;(void)aadlen;(void)src;(void)nsrc;(void)dst;(void)ndst;(void)tag; return 0;}
static const struct ktls_aead_engine nulle={.name="null",.supports=nsup,.key_new=nkey,.key_free=nfree,.seal=nseal,.open=NULL};
int main(void){
  size_t nch=64; struct mb_chain*chunks=calloc(nch,sizeof(*chunks));
  for(size_t i=0;i<nch;i++)mb_append_pages(&chunks[i],0,CH);
  uint8_t s1[48]={1},s2[48]={2};
  struct ktls_conn_params prm={.cipher=KTLS_AES_128_GCM_SHA256,.tx_secret=s1,.rx_secret=s2,.engine=&nulle,.tx_mode=KTLS_TX_OUTOFPLACE,.max_record=16384};
  struct ktls_conn*k; if(ktls_conn_new(&prm,&k)){puts("conn");return 1;}
  size_t batches[]={16384,65536,262144};
  for(int pass=0;pass<3;pass++)
  for(int b=0;b<3;b++){
    size_t batch=batches[b]; double best=1e9;
    for(int r=0;r<5;r++){
      double c0=cpu(); size_t recs=0;
      for(size_t i=0;i<nch*8;i++){ struct mb_chain*c=&chunks[i%nch];
        for(size_t off=0;off<c->len;off+=batch){
          struct mb_chain p=MB_CHAIN_INIT,o=MB_CHAIN_INIT;
          mb_chain_copy_ref(&p,c,off,batch); if(ktls_tx_seal(k,&p,&o)) abort(); mb_chain_free(&o);
        }
        recs+=c->len/16384;
      }
      double ns=(cpu()-c0)/recs*1e9; if(ns<best)best=ns;
    }
    printf("batch %6zu: %.0f ns per record of overhead (null engine)\n",batch,best);
  }
}
