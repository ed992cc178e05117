#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rpctls/ktls.h"
#include "rpctls/aead.h"
#include "rpctls/mbuf.h"
#define CH (256*1024)
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static struct mb_chain *chunks; static size_t nch; static size_t i;
static const struct ktls_aead_engine *e; static struct ktls_aead_key *key;
static uint8_t *pagedst; static uint8_t *recs[16];
static size_t doff; static size_t TOTAL=16u<<20;
static double run_raw(int variant){
  uint8_t nonce[12]={0},aad[5]={23,3,3,0,0},tag[16]; uint8_t ct=23;
  size_t done=0; unsigned rn=0; double c0=cpu();
  while(done<TOTAL){
    struct mb_chain*c=&chunks[i];
    for(size_t off=0;off<c->len;off+=16384){
      struct iovec src[8],dst[2]; int ns=mb_chain_to_iovec(c,off,16384,src,7), nd=1;
      uint8_t*d;
      uint8_t *held=NULL; if(variant==10){held=mb_rec_alloc();}
      switch(variant){case 10: d=held+64; break; case 9: case 0: case 2: d=pagedst; break; case 1: d=recs[0]+64; break; case 3: d=pagedst+doff; break; default: d=recs[rn++%16]+64;}
      dst[0].iov_base=d; dst[0].iov_len=16384;
      if(variant>=2&&variant!=9){src[ns].iov_base=&ct;src[ns].iov_len=1;ns++;dst[0].iov_len++;}
      nonce[11]++;
      e->seal(key,nonce,aad,5,src,ns,dst,nd,tag); if(held) mb_rec_free(held);
      done+=16384;
    }
    i=(i+1)%nch;
  }
  return done/(cpu()-c0)/1e9;
}
static double run_tx(struct ktls_conn*k, size_t batch){
  size_t done=0; double c0=cpu();
  while(done<TOTAL){
    struct mb_chain*c=&chunks[i];
    for(size_t off=0;off<c->len;off+=batch){
      struct mb_chain p=MB_CHAIN_INIT,o=MB_CHAIN_INIT;
      mb_chain_copy_ref(&p,c,off,batch); if(ktls_tx_seal(k,&p,&o)) abort(); mb_chain_free(&o);
    }
    done+=c->len; i=(i+1)%nch;
  }
  return done/(cpu()-c0)/1e9;
}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int reps=argc>1?atoi(argv[1]):9; doff=getenv("DOFF")?atoi(getenv("DOFF")):64;
  nch=(256u<<20)/CH; chunks=calloc(nch,sizeof(*chunks));
  for(size_t i=0;i<nch;i++){mb_append_pages(&chunks[i],0,CH); struct iovec v[64]; int n=mb_chain_to_iovec(&chunks[i],0,CH,v,64); for(int k=0;k<n;k++) memset(v[k].iov_base,i*3+k,v[k].iov_len);}
  e=ktls_aead_default(KTLS_AES_128_GCM_SHA256); uint8_t kb[32]={7}; e->key_new(KTLS_AES_128_GCM_SHA256,kb,&key);
  pagedst=aligned_alloc(4096,20480); memset(pagedst,0,20480);
  for(int i=0;i<16;i++){recs[i]=mb_rec_alloc(); memset(recs[i],0,MB_REC_SIZE);}
  uint8_t s1[48]={1},s2[48]={2};
  struct ktls_conn_params prm={.cipher=KTLS_AES_128_GCM_SHA256,.tx_secret=s1,.rx_secret=s2,.engine=e,.tx_mode=KTLS_TX_OUTOFPLACE,.max_record=16384};
  struct ktls_conn*k; ktls_conn_new(&prm,&k);
  const char*names[]={"raw-oop(page dst)","rec+64 dst","page dst + ct","rec+64 + ct","16 recs ring + ct","tx_seal 16K","tx_seal 32K","tx_seal 64K","tx_seal 256K","raw-oop again","pool rec + ct"};
  enum{NV=11}; double r[NV][512];
  for(int rep=0;rep<reps;rep++){
    int ord[NV]; for(int v=0;v<NV;v++)ord[v]=v; for(int v=NV-1;v>0;v--){int j=rand()%(v+1);int t=ord[v];ord[v]=ord[j];ord[j]=t;}
    for(int vi=0;vi<NV;vi++){ int v=ord[vi]; if(getenv("ONLY") && v!=atoi(getenv("ONLY"))) {r[v][rep]=1; continue;}
      r[v][rep]= v<5||v>8?run_raw(v): run_tx(k, v==5?16384: v==6?32768 : v==7?65536:262144);
    }
  }
  for(int v=0;v<NV;v++){
    double rr[512]; for(int i=0;i<reps;i++) rr[i]=r[v][i]/r[0][i];
    qsort(rr,reps,sizeof(double),cmpd); qsort(r[v],reps,sizeof(double),cmpd);
    printf("%-20s median %6.2f GB/s best %6.2f | ratio to raw-oop same rep: median %.3f (q1 %.3f q3 %.3f)\n",names[v],r[v][reps/2],r[v][reps-1],rr[reps/2],rr[reps/4],rr[3*reps/4]);
  }
}
