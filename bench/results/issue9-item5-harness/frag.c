#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rpctls/ktls.h"
#include "rpctls/aead.h"
#include "rpctls/mbuf.h"
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static size_t npages=(256u<<20)/4096, pos; static uint8_t **pages; static uint8_t *ring[16];
static double run(const struct ktls_aead_engine*e, struct ktls_aead_key*k, int v){
  size_t total=16u<<20,done=0; unsigned rn=0; uint8_t nonce[12]={0},aad[5]={23,3,3,0,0},tag[16],ct=23; double c0=cpu();
  while(done<total){
    uint8_t*d=ring[rn++%16]+64; struct iovec src[6]; for(int j=0;j<4;j++){src[j].iov_base=pages[(pos+j)%npages];src[j].iov_len=4096;}
    pos+=4;
    if(v==0){ src[4].iov_base=&ct;src[4].iov_len=1; struct iovec dv={d,16385}; e->seal(k,nonce,aad,5,src,5,&dv,1,tag);}
    else { for(int j=0;j<4;j++) memcpy(d+4096*j,src[j].iov_base,4096); d[16384]=23; struct iovec dv={d,16385}; e->seal(k,nonce,aad,5,&dv,1,&dv,1,tag);}
    done+=16384;
  }
  return done/(cpu()-c0)/1e9;
}
int main(int argc,char**argv){
  int reps=atoi(argv[1]);
  pages=malloc(npages*sizeof(*pages)); for(size_t i=0;i<npages;i++){pages[i]=mb_page_alloc(); memset(pages[i],i,4096);}
  for(size_t i=npages-1;i>0;i--){size_t j=rand()%(i+1); uint8_t*t=pages[i];pages[i]=pages[j];pages[j]=t;}
  for(int i=0;i<16;i++){ring[i]=mb_rec_alloc(); memset(ring[i],0,MB_REC_SIZE);}
  const char*en[]={"ipsecmb","openssl"};
  for(int ei=0;ei<2;ei++){
    const struct ktls_aead_engine*e=ktls_aead_find(en[ei]); if(!e)continue; struct ktls_aead_key*k; uint8_t kb[32]={7}; e->key_new(KTLS_AES_128_GCM_SHA256,kb,&k);
    static double r[2][1000];
    for(int rep=0;rep<reps;rep++){ int f=rep&1; r[f][rep]=run(e,k,f); r[!f][rep]=run(e,k,!f);}
    double rr[1000]; for(int i=0;i<reps;i++)rr[i]=r[1][i]/r[0][i]; qsort(rr,reps,8,cmpd); qsort(r[0],reps,8,cmpd); qsort(r[1],reps,8,cmpd);
    printf("%s scattered 4K pages -> ring16: walk %.2f GB/s median (best %.2f), copy+inplace %.2f (best %.2f); copy/walk median %.3f (q1 %.3f q3 %.3f)\n",en[ei],r[0][reps/2],r[0][reps-1],r[1][reps/2],r[1][reps-1],rr[reps/2],rr[reps/4],rr[3*reps/4]);
  }
}
