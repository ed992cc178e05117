#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include "rpctls/ktls.h"
#include "rpctls/aead.h"
#include "rpctls/mbuf.h"
#define CH (256*1024)
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void*drain(void*a){int fd=*(int*)a; static char buf[1<<20]; while(read(fd,buf,sizeof buf)>0); return NULL;}
static struct mb_chain *chunks; static size_t nch=1024, ci;
static double run(struct ktls_conn*k,int fd,size_t batch){
  size_t total=32u<<20,done=0; double c0=cpu();
  while(done<total){ struct mb_chain*c=&chunks[ci];
    for(size_t off=0;off<c->len;off+=batch){ struct mb_chain p=MB_CHAIN_INIT,o=MB_CHAIN_INIT;
      mb_chain_copy_ref(&p,c,off,batch); if(ktls_tx_seal(k,&p,&o)) abort(); if(ktls_write_chain(fd,&o)) abort(); }
    done+=c->len; ci=(ci+1)%nch; }
  return done/(cpu()-c0)/1e9;
}
int main(int argc,char**argv){
  int reps=atoi(argv[1]); int unix_=argc>2&&argv[2][0]=='u';
  chunks=calloc(nch,sizeof(*chunks));
  for(size_t i=0;i<nch;i++){mb_append_pages(&chunks[i],0,CH);}
  int fds[2];
  if(unix_) socketpair(AF_UNIX,SOCK_STREAM,0,fds);
  else { int l=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(INADDR_LOOPBACK)}; bind(l,(void*)&a,sizeof a); socklen_t al=sizeof a; getsockname(l,(void*)&a,&al); listen(l,1);
    fds[0]=socket(AF_INET,SOCK_STREAM,0); connect(fds[0],(void*)&a,sizeof a); fds[1]=accept(l,NULL,NULL);}
  pthread_t t; pthread_create(&t,NULL,drain,&fds[1]);
  uint8_t s1[48]={1},s2[48]={2};
  struct ktls_conn_params prm={.cipher=KTLS_AES_128_GCM_SHA256,.tx_secret=s1,.rx_secret=s2,.tx_mode=KTLS_TX_OUTOFPLACE,.max_record=16384};
  struct ktls_conn*k; ktls_conn_new(&prm,&k);
  size_t b[]={16384,32768,65536,131072,262144}; enum{NV=5}; static double r[NV][1000];
  for(int rep=0;rep<reps;rep++){int ord[NV]; for(int v=0;v<NV;v++)ord[v]=v; for(int v=NV-1;v>0;v--){int j=rand()%(v+1);int tt=ord[v];ord[v]=ord[j];ord[j]=tt;}
    for(int vi=0;vi<NV;vi++) r[ord[vi]][rep]=run(k,fds[0],b[ord[vi]]);}
  for(int v=0;v<NV;v++){double rr[1000]; for(int i=0;i<reps;i++)rr[i]=r[v][i]/r[NV-1][i]; qsort(rr,reps,8,cmpd); qsort(r[v],reps,8,cmpd);
    printf("%s batch %6zu: median %6.2f best %6.2f GB/s sender CPU | vs 256K: median %.3f (q1 %.3f q3 %.3f)\n",unix_?"unix":"tcp",b[v],r[v][reps/2],r[v][reps-1],rr[reps/2],rr[reps/4],rr[3*reps/4]);}
  return 0;
}
