#include <intel-ipsec-mb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include <sys/mman.h>
static uint8_t *hdst;
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static size_t ws=256u<<20, rec=16384, pos;
static uint8_t *src,*dst; static IMB_MGR*m; static struct gcm_key_data *k;
static double run(int v){
  size_t total=16u<<20, done=0; unsigned rn=0; uint8_t iv[12]={0},aad[5]={0},tag[16],ct=23;
  int nd = v==0||v==10?1:16; if(v==11) nd=16; if(v==6) v=1;
  double c0=cpu();
  while(done<total){
    uint8_t*dp=dst+(size_t)(rn++%nd)*16512+64, *sp=src+pos;
    if(v==5||v==6) dp=dst+(size_t)((rn-1)%16)*20480+2048;
    if(v==7) dp=dst+2048+64;
    if(v==8) dp=dst+64;
    if(v==11) dp=hdst+(size_t)((rn-1)%16)*16512+64;
    struct gcm_context_data c;
    if(v==2||v==5) for(size_t o=0;o<rec+64;o+=64) __builtin_prefetch(dp+o,1,3);
    IMB_AES128_GCM_INIT(m,k,&c,iv,aad,5);
    if(v==3){
      for(size_t o=0;o<rec;o+=4096){ if(o+4096<rec) for(size_t q=0;q<4096;q+=64) __builtin_prefetch(dp+o+4096+q,1,3);
        IMB_AES128_GCM_ENC_UPDATE(m,k,&c,dp+o,sp+o,4096);}
    } else if(v==9||v==10){
      memcpy(dp,sp,rec); IMB_AES128_GCM_ENC_UPDATE(m,k,&c,dp,dp,rec);
    } else if(v==4){
      for(size_t o=0;o<rec;o+=4096) IMB_AES128_GCM_ENC_UPDATE(m,k,&c,dp+o,sp+o,4096);
    } else
      IMB_AES128_GCM_ENC_UPDATE(m,k,&c,dp,sp,rec);
    IMB_AES128_GCM_ENC_UPDATE(m,k,&c,dp+rec,&ct,1);
    IMB_AES128_GCM_ENC_FINALIZE(m,k,&c,tag,16);
    done+=rec; pos=(pos+rec)%ws;
  }
  return done/(cpu()-c0)/1e9;
}
int main(int argc,char**argv){
  int reps=atoi(argv[1]);
  m=alloc_mb_mgr(0); init_mb_mgr_auto(m,NULL);
  k=aligned_alloc(64,sizeof(*k)); uint8_t key[16]={7}; IMB_AES128_GCM_PRE(m,key,k);
  src=aligned_alloc(4096,ws); for(size_t i=0;i<ws;i++)src[i]=i*7;
  dst=aligned_alloc(4096,17*20480); memset(dst,1,17*20480);
  { uint8_t*r=mmap(NULL,8<<20,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); hdst=(uint8_t*)(((uintptr_t)r+(2<<20)-1)&~(uintptr_t)((2<<20)-1)); printf("madvise %d\n",madvise(hdst,4<<20,MADV_HUGEPAGE)); memset(hdst,1,4<<20);}
  const char*names[]={"1 dst","ring16","ring16 prefetchw all","ring16 4K pieces+pfw next","ring16 4K pieces","ring16 off2048 pf","ring16 off2048","1 dst off 2112","1 dst off 64","ring16 memcpy+inplace","1 dst memcpy+inplace","ring16 hugepage dst"};
  enum{NV=12}; static double r[NV][1000];
  for(int rep=0;rep<reps;rep++){int ord[NV]; for(int v=0;v<NV;v++)ord[v]=v; for(int v=NV-1;v>0;v--){int j=rand()%(v+1);int t=ord[v];ord[v]=ord[j];ord[j]=t;}
    for(int vi=0;vi<NV;vi++) r[ord[vi]][rep]=run(ord[vi]);}
  for(int v=0;v<NV;v++){double rr[1000]; for(int i=0;i<reps;i++)rr[i]=r[v][i]/r[0][i]; qsort(rr,reps,8,cmpd); qsort(r[v],reps,8,cmpd);
    printf("%-28s median %6.2f best %6.2f | vs 1 dst: median %.3f (q1 %.3f q3 %.3f)\n",names[v],r[v][reps/2],r[v][reps-1],rr[reps/2],rr[reps/4],rr[3*reps/4]);}
}
